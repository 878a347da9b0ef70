package master

import (
	"context"
	"errors"
	"log/slog"
	"runtime"
	"testing"

	"cellar/internal/serr"
	datapb "cellar/proto/cellar/data/v1"
	masterpb "cellar/proto/cellar/master/v1"
)

// A merge request refused because its tablets are not both idle (here the
// left one is still held by an intent, as after a new master undoes a
// merge its predecessor began) reads nothing of the tablets after it lets
// go of the term's lock: meanwhile the reconcile loop's METADATA scans give
// tablets that are not busy new descriptors (mergeScanLocked). Run with
// -race: the refusal once named the tablets from their descriptors after
// unlocking (TestMergeTablets/intent, where the client's first retries
// meet the held tablets while the new master scans).
func TestMergeRefusalReadsTabletsUnderLock(t *testing.T) {
	left := &datapb.TabletDescriptor{TableId: 1, TabletId: 7, EndRow: []byte("m"), Dir: "l"}
	right := &datapb.TabletDescriptor{TableId: 1, TabletId: 9, StartRow: []byte("m"), Dir: "r"}
	tm := &term{
		servers:     map[string]*serverInfo{"s1": {id: "s1", addr: "127.0.0.1:1"}},
		tablets:     map[uint64]*tabletInfo{7: {desc: left, server: "s1", held: true}, 9: {desc: right, server: "s1"}},
		schemas:     map[uint64]*datapb.TableSchema{1: {Name: "t", TableId: 1}},
		names:       map[string]uint64{"t": 1},
		schemasRead: true,
		merging:     map[uint64]bool{},
		gone:        map[uint64]bool{},
	}
	m := &Master{log: slog.New(slog.DiscardHandler), active: tm}
	tm.m = m

	// The reconcile loop: scans that find both rows, the left one still
	// carrying its intent.
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		held := map[uint64]bool{7: true}
		for {
			select {
			case <-stop:
				return
			default:
			}
			tm.mu.Lock()
			tm.mergeScanLocked([]*datapb.TabletDescriptor{cloneDesc(left), cloneDesc(right)}, held, nil, isUser, tm.gen)
			tm.mu.Unlock()
			runtime.Gosched()
		}
	}()
	for range 200 {
		_, err := m.mergeTablets(context.Background(), &masterpb.MergeTabletsRequest{Name: "t", Row: []byte("a")})
		if !errors.Is(err, serr.ErrUnavailable) {
			t.Errorf("merge of a held tablet: %v, want ErrUnavailable", err)
			break
		}
		runtime.Gosched()
	}
	close(stop)
	<-done
}
