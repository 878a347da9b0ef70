package tabletserver

import (
	"fmt"
	"testing"
	"time"

	"cellar/lock"
	tabletpb "cellar/proto/cellar/tablet/v1"
)

func TestLogRelease_OnlyFlushedFilesGo(t *testing.T) {
	e := newEnv(t)
	ts := e.startServer(lock.ClientOptions{}, func(o *Options) {
		o.walMaxFileSize = 4 << 10
		o.checkInterval = 1 << 40 // the test calls releaseLog itself
	})
	a, b := e.newTablet("", "m"), e.newTablet("m", "")
	e.load(ts, a)
	e.load(ts, b)
	for i := range 200 {
		if err := ts.mutate(e.ctx, fmt.Sprintf("b%04d", i), set("cf", "q", 1, "value")); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 200 {
		if err := ts.mutate(e.ctx, fmt.Sprintf("x%04d", i), set("cf", "q", 1, "value")); err != nil {
			t.Fatal(err)
		}
	}
	holds := func(id uint64) int {
		n := 0
		for _, f := range ts.s.wal.Files() {
			if _, ok := f.MaxSeq[id]; ok {
				n++
			}
		}
		return n
	}
	before := len(ts.s.wal.Files())
	if before < 3 || holds(a.TabletId) == 0 || holds(b.TabletId) == 0 {
		t.Fatalf("want several log files holding both tablets, have %d", before)
	}
	flush := func(id uint64) {
		if _, err := ts.cl.FlushTablet(e.ctx, &tabletpb.FlushTabletRequest{TableId: testTable, TabletId: id}); err != nil {
			t.Fatal(err)
		}
	}
	// Only a is flushed: files with b's entries stay.
	flush(a.TabletId)
	ts.s.releaseLog()
	nb := holds(b.TabletId)
	if nb == 0 {
		t.Fatal("files holding unflushed entries of b were released")
	}
	for _, f := range ts.s.wal.Files()[:len(ts.s.wal.Files())-1] {
		if _, ok := f.MaxSeq[b.TabletId]; !ok {
			t.Errorf("file %s holds only flushed entries but was kept", f.Name)
		}
	}
	flush(b.TabletId)
	ts.s.releaseLog()
	if n := len(ts.s.wal.Files()); n != 1 {
		t.Fatalf("after flushing everything %d log files remain, want only the live one", n)
	}
}

func TestStatusAndSamples(t *testing.T) {
	e := newEnv(t)
	ts := e.startServer(lock.ClientOptions{}, func(o *Options) { o.checkInterval = 1 << 40 })
	a, b := e.newTablet("", "m"), e.newTablet("m", "")
	e.load(ts, a)
	e.load(ts, b)
	for i := range 50 {
		if err := ts.mutate(e.ctx, fmt.Sprintf("%c%03d", "bx"[i%2], i), set("cf", "q", 1, "value")); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := ts.cl.CompactTablet(e.ctx, &tabletpb.CompactTabletRequest{TableId: testTable, Major: true}); err != nil {
		t.Fatal(err)
	}
	sr, err := ts.cl.SampleRowKeys(e.ctx, &tabletpb.SampleRowKeysRequest{TableId: testTable})
	if err != nil {
		t.Fatal(err)
	}
	if len(sr.Samples) != 2 || string(sr.Samples[0].RowKey) != "m" || len(sr.Samples[1].RowKey) != 0 ||
		sr.Samples[0].OffsetBytes <= 0 || sr.Samples[1].OffsetBytes <= sr.Samples[0].OffsetBytes {
		t.Fatalf("samples %v", sr.Samples)
	}
	// One rate interval ends (the checker would do this every few seconds).
	for _, en := range ts.s.snapshot() {
		en.tick(time.Now().Add(time.Second))
	}
	st, err := ts.cl.ServerStatus(e.ctx, &tabletpb.ServerStatusRequest{})
	if err != nil || !st.Serving || st.ServerId != ts.s.ID() || len(st.Tablets) != 2 {
		t.Fatalf("ServerStatus = %v, %v", st, err)
	}
	for _, tb := range st.Tablets {
		if tb.WritesPerSecond <= 0 || tb.SstableBytes <= 0 || tb.SstableFiles == 0 {
			t.Errorf("tablet status %v: want writes/s and SSTable bytes", tb)
		}
	}
}
