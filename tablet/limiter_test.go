package tablet

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"cellar/dfs/memfs"
)

// countingLimiter is a Limiter of n slots that records how many were in
// use at most.
type countingLimiter struct {
	slots            chan struct{}
	mu               sync.Mutex
	inUse, max, uses int
}

func (l *countingLimiter) Acquire(ctx context.Context) error {
	select {
	case l.slots <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	l.mu.Lock()
	l.inUse++
	l.uses++
	l.max = max(l.max, l.inUse)
	l.mu.Unlock()
	return nil
}

func (l *countingLimiter) Release() {
	l.mu.Lock()
	l.inUse--
	l.mu.Unlock()
	<-l.slots
}

// Background compactions of several tablets sharing a limiter hold one of
// its slots each while they run, so no more than its size run at once.
func TestCompactionLimiterSharedByTablets(t *testing.T) {
	ctx := context.Background()
	lim := &countingLimiter{slots: make(chan struct{}, 1)}
	fs := memfs.New()
	var tabs []*Tablet
	for i := range 3 {
		tabs = append(tabs, openTest(t, &Options{FS: fs, Dir: fmt.Sprintf("t%d", i), CompactionTrigger: 2, CompactionLimiter: lim}))
	}
	var wg sync.WaitGroup
	for _, tab := range tabs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for round := range 8 {
				for i := range 20 {
					row := []byte(fmt.Sprintf("r%02d-%03d", round, i))
					if err := tab.Apply(ctx, row, []Mutation{SetCell("a", nil, 1, row)}, nil); err != nil {
						t.Error(err)
						return
					}
				}
				if err := tab.Flush(ctx); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	for _, tab := range tabs {
		// Compact(false) runs what the picker still wants, without a slot.
		if err := tab.Compact(ctx, false); err != nil {
			t.Fatal(err)
		}
		if n := tab.Stats().Families[0].Files; n > 2 {
			t.Errorf("family a has %d files after compaction, want at most 2", n)
		}
		if err := tab.Close(); err != nil {
			t.Fatal(err)
		}
	}
	lim.mu.Lock()
	defer lim.mu.Unlock()
	if lim.uses == 0 || lim.max > 1 {
		t.Fatalf("limiter used %d times with at most %d slots in use; want background compactions bounded by its 1 slot", lim.uses, lim.max)
	}
}
