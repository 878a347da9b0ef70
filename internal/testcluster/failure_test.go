package testcluster_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"cellar/client"
	"cellar/internal/testcluster"
)

// writer keeps writing rows with sync durability (explicit timestamps, so
// the client retries them across failures) and remembers what was
// acknowledged.
type writer struct {
	mu    sync.Mutex
	acked map[string]string
	fails int
}

func (w *writer) run(ctx context.Context, tbl *client.Table, id int) {
	for i := 0; ctx.Err() == nil; i++ {
		row := fmt.Sprintf("%c-w%d-%06d", 'a'+rune((i*7+id)%26), id, i)
		val := fmt.Sprintf("v%d-%d", id, i)
		m := client.NewMutation()
		m.Set("f", "q", client.Timestamp(1+i), []byte(val))
		actx, cancel := context.WithTimeout(ctx, 30*time.Second)
		err := tbl.Apply(actx, row, m)
		cancel()
		w.mu.Lock()
		if err == nil {
			w.acked[row] = val
		} else if ctx.Err() == nil {
			w.fails++
		}
		w.mu.Unlock()
	}
}

func (w *writer) verify(t *testing.T, ctx context.Context, tbl *client.Table) {
	t.Helper()
	w.mu.Lock()
	defer w.mu.Unlock()
	got := map[string]string{}
	err := tbl.ReadRows(ctx, client.InfiniteRange(""), func(r client.Row) bool {
		if items := r["f"]; len(items) > 0 {
			got[r.Key()] = string(items[0].Value)
		}
		return true
	})
	if err != nil {
		t.Fatalf("scan for verification: %v", err)
	}
	lost := 0
	for row, val := range w.acked {
		if got[row] != val {
			if lost < 10 {
				t.Errorf("acknowledged write lost: row %q = %q, want %q", row, got[row], val)
			}
			lost++
		}
	}
	if lost > 0 {
		t.Fatalf("%d of %d acknowledged writes lost", lost, len(w.acked))
	}
	t.Logf("verified %d acknowledged writes (%d writes failed, none acknowledged)", len(w.acked), w.fails)
}

func splitKeys() []string {
	var ks []string
	for c := 'c'; c <= 'z'; c += 4 {
		ks = append(ks, string(c))
	}
	return ks
}

// waitServed probes a row of every tablet the victim served until each
// answers, and returns how long that took after the kill.
func waitServed(t *testing.T, ctx context.Context, tbl *client.Table, rows []string, killed time.Time) time.Duration {
	t.Helper()
	for _, r := range rows {
		for {
			pctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
			_, err := tbl.ReadRow(pctx, r)
			cancel()
			if err == nil {
				break
			}
			if ctx.Err() != nil {
				t.Fatalf("tablet of row %q never came back: %v", r, err)
			}
		}
	}
	return time.Since(killed)
}

func TestKillTabletServer(t *testing.T) {
	c := testcluster.Start(t, testcluster.Options{})
	cl := dial(t, c)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if err := cl.Admin().CreateTable(ctx, "t", map[string]client.GCPolicy{"f": client.MaxVersionsPolicy(1)}, splitKeys()...); err != nil {
		t.Fatalf("create: %v", err)
	}
	tbl := cl.Open("t")
	w := &writer{acked: map[string]string{}}
	wctx, stopWriters := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Add(1)
		go func() { defer wg.Done(); w.run(wctx, tbl, i) }()
	}
	time.Sleep(1500 * time.Millisecond)

	info, err := cl.Admin().TableInfo(ctx, "t")
	if err != nil {
		t.Fatal(err)
	}
	victim := c.Servers[rand.IntN(len(c.Servers))]
	var probes []string
	for _, tb := range info.Tablets {
		if tb.ServerAddr == victim.Addr {
			probes = append(probes, tb.StartKey+"probe")
		}
	}
	killed := time.Now()
	c.KillServer(indexOf(c, victim))
	t.Logf("killed tablet server %s serving %d tablets of t", victim.Addr, len(probes))
	d := waitServed(t, ctx, tbl, probes, killed)
	t.Logf("UNAVAILABLE: the killed server's tablets were unavailable for %v", d.Round(time.Millisecond))
	time.Sleep(time.Second)
	stopWriters()
	wg.Wait()
	w.verify(t, ctx, tbl)
}

func indexOf(c *testcluster.Cluster, s *testcluster.Server) int {
	for i, x := range c.Servers {
		if x == s {
			return i
		}
	}
	return -1
}
