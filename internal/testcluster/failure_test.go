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
	"cellar/master"
	datapb "cellar/proto/cellar/data/v1"
	tabletpb "cellar/proto/cellar/tablet/v1"
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

// incompressible returns 1000 pseudo-random printable bytes: SSTable
// blocks are compressed and splits count bytes on disk.
func incompressible(a, b uint64) string {
	r := rand.New(rand.NewPCG(a, b))
	buf := make([]byte, 1000)
	for i := range buf {
		buf[i] = byte('!' + r.IntN(90))
	}
	return string(buf)
}

// runPadded is run with 1 KB values, to make tablets split.
func (w *writer) runPadded(ctx context.Context, tbl *client.Table, id int) {
	for i := 0; ctx.Err() == nil; i++ {
		row := fmt.Sprintf("%c-w%d-%06d", 'a'+rune((i*7+id)%26), id, i)
		val := fmt.Sprintf("v%d-%d-%s", id, i, incompressible(uint64(id), uint64(i)))
		m := client.NewMutation()
		m.Set("f", "q", 1, []byte(val))
		if err := tbl.Apply(ctx, row, m); err == nil {
			w.mu.Lock()
			w.acked[row] = val
			w.mu.Unlock()
		}
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

// A paused tablet server (cut off from the lock service, still running)
// loses its tablets to others; when it comes back it serves nothing and a
// write sent straight to it is refused and never becomes visible.
func TestPauseTabletServer(t *testing.T) {
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
	time.Sleep(time.Second)
	info, err := cl.Admin().TableInfo(ctx, "t")
	if err != nil {
		t.Fatal(err)
	}
	vi := 1
	victim := c.Servers[vi]
	var victimRow string
	for _, tb := range info.Tablets {
		if tb.ServerAddr == victim.Addr {
			victimRow = tb.StartKey + "zz-paused-write"
		}
	}
	if victimRow == "" {
		t.Fatalf("server %s serves no tablet of t: %+v", victim.Addr, info.Tablets)
	}
	paused := time.Now()
	c.PauseServer(vi)
	// Wait until the master has moved every tablet off the paused server.
	for {
		info, err := cl.Admin().TableInfo(ctx, "t")
		if err == nil {
			on := 0
			for _, tb := range info.Tablets {
				if tb.ServerAddr == victim.Addr || tb.ServerAddr == "" {
					on++
				}
			}
			if on == 0 {
				break
			}
		}
		if ctx.Err() != nil {
			t.Fatalf("tablets never left the paused server")
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("tablets reassigned %v after the pause", time.Since(paused).Round(time.Millisecond))
	c.ResumeServer(vi)
	time.Sleep(500 * time.Millisecond)
	st, err := victim.TS.ServerStatus(ctx, &tabletpb.ServerStatusRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if st.Serving || len(st.Tablets) > 0 {
		t.Errorf("resumed server still serving=%v with %d tablets", st.Serving, len(st.Tablets))
	}
	// A write sent straight to the old server is refused...
	_, err = victim.TS.MutateRow(ctx, &tabletpb.MutateRowRequest{TableId: info.ID, RowKey: []byte(victimRow),
		Mutations: []*datapb.Mutation{{Mutation: &datapb.Mutation_SetCell_{SetCell: &datapb.Mutation_SetCell{Family: "f", Qualifier: []byte("q"), Timestamp: 1, Value: []byte("stale")}}}}})
	if err == nil {
		t.Errorf("the paused server accepted a write after losing its tablets")
	}
	// ...and its commit log is gone: the master split it and deleted it.
	fs := c.FS()
	if ents, err := fs.List(ctx, "servers/"+victim.TS.ID()+"/log"); err != nil || len(ents) > 0 {
		t.Errorf("paused server's log still has %d files (err %v)", len(ents), err)
	}
	time.Sleep(500 * time.Millisecond)
	stopWriters()
	wg.Wait()
	if r, err := tbl.ReadRow(ctx, victimRow); err != nil || r != nil {
		t.Errorf("write sent to the paused server is visible: %v %v", r, err)
	}
	w.verify(t, ctx, tbl)
}

// waitCovered waits until the table's tablets are all served exactly once.
func waitCovered(t *testing.T, ctx context.Context, c *testcluster.Cluster, table uint64) {
	t.Helper()
	var err error
	for ctx.Err() == nil {
		if err = c.CheckTablets(ctx, table); err == nil {
			if st, serr := c.Status(ctx); serr == nil && st.UnassignedTablets == 0 {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("tablets never settled: %v\n%s", err, c.Dump(context.Background()))
}

// Kill the active master while it recovers a killed tablet server: the
// standby finishes the recovery; no tablet is lost, doubled or left
// unassigned, and no acknowledged write is lost.
func TestKillMasterDuringRecovery(t *testing.T) {
	// The first master to recover a server stops in the middle (after
	// ending the dead server's leases, before splitting its log) until
	// the test kills it.
	inRecovery := make(chan string, 1)
	var once sync.Once
	hooks := master.Hooks{AfterLeaseRecovery: func(ctx context.Context, server string) {
		first := false
		once.Do(func() { first = true })
		if first {
			inRecovery <- server
			<-ctx.Done()
		}
	}}
	c := testcluster.Start(t, testcluster.Options{MasterHooks: hooks})
	cl := dial(t, c)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if err := cl.Admin().CreateTable(ctx, "t", map[string]client.GCPolicy{"f": client.MaxVersionsPolicy(1)}, splitKeys()...); err != nil {
		t.Fatalf("create: %v", err)
	}
	info, err := cl.Admin().TableInfo(ctx, "t")
	if err != nil {
		t.Fatal(err)
	}
	tbl := cl.Open("t")
	w := &writer{acked: map[string]string{}}
	wctx, stopWriters := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Add(1)
		go func() { defer wg.Done(); w.run(wctx, tbl, i) }()
	}
	time.Sleep(time.Second)
	c.KillServer(0)
	var server string
	select {
	case server = <-inRecovery:
	case <-ctx.Done():
		t.Fatal("no recovery started")
	}
	mi := c.ActiveMaster()
	c.KillMaster(mi)
	t.Logf("killed tablet server 0 (%s) and master %d in the middle of its recovery", server, mi)
	c.AddMaster() // a new standby, so that two remain
	waitCovered(t, ctx, c, info.ID)
	time.Sleep(500 * time.Millisecond)
	stopWriters()
	wg.Wait()
	w.verify(t, ctx, tbl)
}

// Kill the active master while tablets split under load: splits go on,
// the standby takes over, and the table stays covered exactly once.
func TestKillMasterDuringSplits(t *testing.T) {
	c := testcluster.Start(t, testcluster.Options{MemFS: true, SplitSize: 256 << 10, MemtableSize: 128 << 10})
	cl := dial(t, c)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if err := cl.Admin().CreateTable(ctx, "s", map[string]client.GCPolicy{"f": client.MaxVersionsPolicy(1)}); err != nil {
		t.Fatalf("create: %v", err)
	}
	info, err := cl.Admin().TableInfo(ctx, "s")
	if err != nil {
		t.Fatal(err)
	}
	tbl := cl.Open("s")
	w := &writer{acked: map[string]string{}}
	wctx, stopWriters := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Add(1)
		go func() { defer wg.Done(); w.runPadded(wctx, tbl, i) }()
	}
	time.Sleep(1500 * time.Millisecond)
	mi, err := c.WaitActiveMaster(ctx)
	if err != nil {
		t.Fatal(err)
	}
	c.KillMaster(mi)
	c.AddMaster()
	time.Sleep(3 * time.Second)
	stopWriters()
	wg.Wait()
	waitCovered(t, ctx, c, info.ID)
	info, err = cl.Admin().TableInfo(ctx, "s")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d tablets after splits across a master failover", len(info.Tablets))
	if len(info.Tablets) < 3 {
		t.Errorf("only %d tablets: nothing split", len(info.Tablets))
	}
	w.verify(t, ctx, tbl)
}
