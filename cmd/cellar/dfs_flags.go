package main

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"cellar/internal/raftutil"
)

// envDuration is envDefault for durations; a malformed value falls back to
// def silently (the server roles use envFlags, which report it).
func envDuration(name string, def time.Duration) time.Duration {
	if d, err := time.ParseDuration(envDefault(name, def.String())); err == nil {
		return d
	}
	return def
}

// envInt is envDefault for integers.
func envInt(name string, def int64) int64 {
	if n, err := strconv.ParseInt(envDefault(name, strconv.FormatInt(def, 10)), 10, 64); err == nil {
		return n
	}
	return def
}

// splitList splits a comma-separated flag value, dropping empty items.
func splitList(s string) []string {
	var out []string
	for _, x := range strings.Split(s, ",") {
		if x = strings.TrimSpace(x); x != "" {
			out = append(out, x)
		}
	}
	return out
}

// parsePeers parses "grpcAddr=raftAddr,..." into raft peers whose IDs are
// the replicas' gRPC addresses.
func parsePeers(s string) ([]raftutil.Peer, error) {
	var out []raftutil.Peer
	for _, p := range splitList(s) {
		id, addr, ok := strings.Cut(p, "=")
		if !ok || id == "" || addr == "" {
			return nil, fmt.Errorf("peer %q: want grpcAddr=raftAddr", p)
		}
		out = append(out, raftutil.Peer{ID: id, Address: addr})
	}
	return out, nil
}
