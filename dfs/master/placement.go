package master

import (
	"math/rand/v2"
	"net"
)

// node is a placement candidate: a live, healthy chunkserver.
type node struct {
	id, addr, rack string
	free           int64 // bytes; <0 means unknown (unlimited)
}

func host(addr string) string {
	if h, _, err := net.SplitHostPort(addr); err == nil {
		return h
	}
	return addr
}

// place picks up to n distinct nodes for a new chunk's replicas, HDFS
// style: the first on the writer's host when a chunkserver runs there (else
// any), and, when racks are configured, the second on the first's rack and
// the third on another rack; further replicas anywhere. It never returns a
// node twice and falls back to any remaining node when a rule cannot be met.
// writerHost may be ""; cands is not modified.
func place(cands []node, n int, writerHost string, rng *rand.Rand) []node {
	pool := append([]node(nil), cands...)
	rng.Shuffle(len(pool), func(i, j int) { pool[i], pool[j] = pool[j], pool[i] })
	racks := false
	for _, c := range pool {
		if c.rack != "" {
			racks = true
		}
	}
	var out []node
	take := func(pred func(node) bool) bool {
		for i, c := range pool {
			if pred(c) {
				out = append(out, c)
				pool = append(pool[:i], pool[i+1:]...)
				return true
			}
		}
		return false
	}
	anyNode := func(node) bool { return true }
	for len(out) < n && len(pool) > 0 {
		switch {
		case len(out) == 0 && writerHost != "":
			if !take(func(c node) bool { return host(c.addr) == writerHost }) {
				take(anyNode)
			}
		case len(out) == 1 && racks:
			first := out[0].rack
			if !take(func(c node) bool { return c.rack == first }) {
				take(anyNode)
			}
		case len(out) == 2 && racks:
			first := out[0].rack
			if !take(func(c node) bool { return c.rack != first }) {
				take(anyNode)
			}
		default:
			take(anyNode)
		}
	}
	return out
}

// placeExtra picks one node for an additional replica of a chunk already on
// holders, preferring a rack the holders do not cover when racks are
// configured.
func placeExtra(cands []node, holders []node, rng *rand.Rand) (node, bool) {
	if len(cands) == 0 {
		return node{}, false
	}
	covered := map[string]bool{}
	for _, h := range holders {
		covered[h.rack] = true
	}
	start := rng.IntN(len(cands))
	for i := range cands {
		c := cands[(start+i)%len(cands)]
		if c.rack != "" && !covered[c.rack] {
			return c, true
		}
	}
	return cands[start], true
}
