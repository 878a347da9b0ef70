package chunkserver

import (
	"bytes"
	"context"
	"os"
	"testing"
	"time"

	"cellar/internal/clock"
	dfspb "cellar/proto/cellar/dfs/v1"
)

// TestBackgroundScrubberDropsCorruptReplica: the scrubber goroutine, driven
// by an injected clock, finds a flipped byte, drops the replica and queues
// it for the next heartbeat's corrupt report.
func TestBackgroundScrubberDropsCorruptReplica(t *testing.T) {
	clk := clock.NewFake(time.Unix(1000, 0))
	s, err := Start(context.Background(), &Options{Dir: t.TempDir(), Masters: []string{"127.0.0.1:1"},
		ScrubInterval: time.Minute, HeartbeatInterval: time.Hour, Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	c, err := s.store.openForWrite(5, 1, 0)
	if err != nil {
		t.Fatal(err)
	}
	appendSync(t, s.store, c, 1, bytes.Repeat([]byte("scrub me"), 30000), true)
	c.closeFiles()
	b, _ := os.ReadFile(s.ChunkFile(5))
	b[len(b)-1] ^= 1
	os.WriteFile(s.ChunkFile(5), b, 0o644)

	deadline := time.Now().Add(20 * time.Second)
	for s.corruptFound.Load() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("scrubber never found the corrupt replica")
		}
		clk.Advance(time.Minute)
		time.Sleep(5 * time.Millisecond) // let the scrubber goroutine run its pass
	}
	if len(s.Chunks()) != 0 {
		t.Fatalf("corrupt replica still held: %v", s.Chunks())
	}
	s.corrMu.Lock()
	defer s.corrMu.Unlock()
	if len(s.corrupt) != 1 || s.corrupt[0] != 5 {
		t.Fatalf("pending corrupt report %v, want [5]", s.corrupt)
	}
}

func TestDoomed(t *testing.T) {
	for _, tc := range []struct {
		st   chunkState
		d    *dfspb.DeleteCommand
		want bool
	}{
		{chunkState{version: 3, length: 10}, &dfspb.DeleteCommand{BelowVersion: 4}, true},
		{chunkState{version: 4, length: 10}, &dfspb.DeleteCommand{BelowVersion: 4}, false},
		// A short copy at the chunk's version (4) is dropped ...
		{chunkState{version: 4, length: 10}, &dfspb.DeleteCommand{BelowVersion: 5, BelowLength: 11}, true},
		// ... a full one is not, nor a newer one ...
		{chunkState{version: 4, length: 11}, &dfspb.DeleteCommand{BelowVersion: 5, BelowLength: 11}, false},
		{chunkState{version: 5, length: 1}, &dfspb.DeleteCommand{BelowVersion: 5, BelowLength: 11}, false},
		// ... and an older version is stale whatever its length.
		{chunkState{version: 3, length: 99}, &dfspb.DeleteCommand{BelowVersion: 5, BelowLength: 11}, true},
	} {
		if got := doomed(tc.st, tc.d); got != tc.want {
			t.Errorf("doomed(%+v, %v) = %v, want %v", tc.st, tc.d, got, tc.want)
		}
	}
}
