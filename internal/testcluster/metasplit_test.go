package testcluster_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"cellar/client"
	"cellar/dfs"
	"cellar/internal/metadata"
	"cellar/internal/testcluster"
	datapb "cellar/proto/cellar/data/v1"
	tabletpb "cellar/proto/cellar/tablet/v1"
	"cellar/tablet"
)

// METADATA's META tablets split (docs/serving.md, "METADATA"): the root
// tablet indexes them, they index the user tablets. These tests split
// METADATA into several META tablets, automatically (a tiny
// MetaSplitSize) or on request, and check that everything that reads or
// writes METADATA follows.

// logTail is a cluster logger that keeps INFO and above in memory and,
// if the test fails, logs the last lines of it.
type logTail struct {
	mu    sync.Mutex
	lines []string
}

func (l *logTail) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, string(p))
	if len(l.lines) > 4000 {
		l.lines = slices.Clone(l.lines[2000:])
	}
	return len(p), nil
}

func startLogged(t *testing.T, opts testcluster.Options) *testcluster.Cluster {
	t.Helper()
	if os.Getenv("CELLAR_TEST_LOG") == "" {
		lt := &logTail{}
		opts.Logger = slog.New(slog.NewTextHandler(lt, &slog.HandlerOptions{Level: slog.LevelInfo}))
		t.Cleanup(func() {
			if !t.Failed() {
				return
			}
			lt.mu.Lock()
			defer lt.mu.Unlock()
			n := min(len(lt.lines), 300)
			t.Logf("last %d cluster log lines:\n%s", n, strings.Join(lt.lines[len(lt.lines)-n:], ""))
		})
	}
	return testcluster.Start(t, opts)
}

// metaTablets returns the META tablets the root tablet names, in row
// order, with their ranges and locations.
func metaTablets(t *testing.T, ctx context.Context, cl *client.Client) []*datapb.TabletDescriptor {
	t.Helper()
	var out []*datapb.TabletDescriptor
	start := metadata.TableEnd(metadata.TableID)
	err := cl.Open(metadata.Table).ReadRows(ctx, client.NewRange(string(metadata.TableStart(metadata.TableID)), string(metadata.TableEnd(metadata.TableID))),
		func(r client.Row) bool {
			_, end, err := metadata.ParseRowKey([]byte(r.Key()))
			if err != nil {
				t.Errorf("root row %x: %v", r.Key(), err)
				return false
			}
			var d *datapb.TabletDescriptor
			for _, it := range r[metadata.Family] {
				switch it.Column {
				case metadata.Family + ":" + metadata.QualTablet:
					if d, err = metadata.DecodeTablet(it.Value); err != nil {
						t.Errorf("root row %x: %v", r.Key(), err)
						return false
					}
				}
			}
			if d == nil {
				t.Errorf("root row %x has no descriptor", r.Key())
				return false
			}
			for _, it := range r[metadata.Family] {
				if it.Column == metadata.Family+":"+metadata.QualLocation {
					d.ServerId, d.ServerAddress, _ = metadata.DecodeLocation(it.Value)
				}
			}
			d.StartRow, d.EndRow = start, end
			start = end
			out = append(out, d)
			return true
		})
	if err != nil {
		t.Fatalf("read the root tablet: %v", err)
	}
	return out
}

// metaIndex returns the index of the META tablet holding METADATA row key.
func metaIndex(metas []*datapb.TabletDescriptor, key []byte) int {
	for i, d := range metas {
		if metadata.Contains(d.StartRow, d.EndRow, key) {
			return i
		}
	}
	return -1
}

// waitMetaSplits flushes METADATA (a flush pokes the servers' split
// checkers) until the root names at least n META tablets.
func waitMetaSplits(t *testing.T, ctx context.Context, cl *client.Client, n int) []*datapb.TabletDescriptor {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	for {
		metas := metaTablets(t, ctx, cl)
		if len(metas) >= n {
			return metas
		}
		_ = cl.Admin().FlushTable(ctx, metadata.Table) // best effort: a poke
		select {
		case <-ctx.Done():
			t.Fatalf("METADATA has %d META tablets, want at least %d", len(metas), n)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// metaSplitSize makes METADATA split a few times as tables with a few
// hundred tablets are created (a compressed METADATA row is 15-30 bytes,
// and an SSTable has ~2 KiB of index, filter and footer): it settles at
// 4 to 8 META tablets, rather than splitting down to tablets of a row or
// two.
const metaSplitSize = 4 << 10

func manyKeys(n int) []string {
	ks := make([]string, n)
	for i := range ks {
		ks[i] = fmt.Sprintf("k%03d", i)
	}
	return ks
}

// createTables creates tables m0..m<n-1>, each with the split keys.
func createTables(t *testing.T, ctx context.Context, cl *client.Client, n int, keys []string) []string {
	t.Helper()
	var names []string
	for i := range n {
		name := fmt.Sprintf("m%d", i)
		if err := cl.Admin().CreateTable(ctx, name, map[string]client.GCPolicy{"f": client.MaxVersionsPolicy(1)}, keys...); err != nil {
			t.Fatalf("create %s: %v", name, err)
		}
		names = append(names, name)
	}
	return names
}

// probeRow is a row inside tablet tb.
func probeRow(tb client.TabletInfo) string { return tb.StartKey + "-probe" }

// checkEveryTablet writes and reads back one row in every tablet of every
// table through cl.
func checkEveryTablet(t *testing.T, ctx context.Context, cl *client.Client, tables []string, val string) {
	t.Helper()
	for _, name := range tables {
		info, err := cl.Admin().TableInfo(ctx, name)
		if err != nil {
			t.Fatalf("describe %s: %v", name, err)
		}
		tbl := cl.Open(name)
		for _, tb := range info.Tablets {
			row := probeRow(tb)
			m := client.NewMutation()
			m.Set("f", "q", 1, []byte(val))
			if err := tbl.Apply(ctx, row, m); err != nil {
				t.Fatalf("write %s/%q (tablet %d): %v", name, row, tb.ID, err)
			}
			r, err := tbl.ReadRow(ctx, row)
			if err != nil || r == nil || string(r["f"][0].Value) != val {
				t.Fatalf("read %s/%q (tablet %d) = %v, %v; want %q", name, row, tb.ID, r, err, val)
			}
		}
	}
}

// TestMetaTabletsSplit: with a tiny MetaSplitSize, METADATA splits into
// several META tablets as tables are created; every tablet of every table
// stays locatable, readable and writable through a fresh client; user
// tablet splits whose METADATA rows are in a later META tablet commit.
func TestMetaTabletsSplit(t *testing.T) {
	c := startLogged(t, testcluster.Options{MemFS: true, MetaSplitSize: metaSplitSize})
	cl := dial(t, c)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	tables := createTables(t, ctx, cl, 4, manyKeys(100))
	metas := waitMetaSplits(t, ctx, cl, 3)
	t.Logf("METADATA has %d META tablets", len(metas))
	if err := c.CheckTablets(ctx, metadata.TableID); err != nil {
		t.Fatalf("METADATA's tablets: %v\n%s", err, c.Dump(ctx))
	}
	checkEveryTablet(t, ctx, dial(t, c), tables, "v1")

	// Split one tablet of every table: the left daughter's row (the
	// commit) lands in whichever META tablet holds it. Where METADATA
	// split depends on timing; each table's tablet is picked so that the
	// commit is in a META tablet other than the first when the table has
	// rows there (META tablets only split further during the test, so a
	// row past the first stays past it). The last table's last rows are
	// in the last META tablet.
	later := 0
	splitRows := map[string]string{}
	for _, name := range tables {
		info, err := cl.Admin().TableInfo(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		metas = metaTablets(t, ctx, cl)
		pick := info.Tablets[len(info.Tablets)/2] // any, if none is past the first META tablet
		for _, tb := range info.Tablets {
			if metaIndex(metas, metadata.RowKey(info.ID, []byte(tb.StartKey+"-m"))) > 0 {
				pick = tb
				break
			}
		}
		split := pick.StartKey + "-m"
		splitRows[name] = split
		if err := cl.Admin().SplitTable(ctx, name, split); err != nil {
			t.Fatalf("split %s at %q: %v", name, split, err)
		}
		if info, err = cl.Admin().TableInfo(ctx, name); err != nil {
			t.Fatal(err)
		}
		if !slices.ContainsFunc(info.Tablets, func(tb client.TabletInfo) bool { return tb.StartKey == split }) {
			t.Fatalf("%s: no tablet starts at the split row %q after the split", name, split)
		}
		metas = metaTablets(t, ctx, cl)
		idx := metaIndex(metas, metadata.RowKey(info.ID, []byte(split)))
		t.Logf("%s (id %d): the split at %q is committed in META tablet %d of %d", name, info.ID, split, idx, len(metas))
		if idx > 0 {
			later++
		}
		// The commit is in METADATA, in the META tablet that holds it.
		r, err := cl.Open(metadata.Table).ReadRow(ctx, string(metadata.RowKey(info.ID, []byte(split))))
		if err != nil || r == nil || len(r[metadata.Family]) == 0 {
			t.Fatalf("%s: the split's METADATA row = %v, %v", name, r, err)
		}
	}
	if later == 0 {
		t.Fatalf("no split committed in a META tablet other than the first (META tablets: %d)", len(metas))
	}
	fresh := dial(t, c)
	checkEveryTablet(t, ctx, fresh, tables, "v2")
	for _, name := range tables {
		tbl := fresh.Open(name)
		split := splitRows[name]
		parent := strings.TrimSuffix(split, "-m")
		below, above := parent+"-a", split+"-z" // the left and the right daughter
		for _, row := range []string{below, above} {
			m := client.NewMutation()
			m.Set("f", "q", 1, []byte(row))
			if err := tbl.Apply(ctx, row, m); err != nil {
				t.Fatalf("write %s/%q after the split: %v", name, row, err)
			}
		}
		var got []string
		if err := tbl.ReadRows(ctx, client.NewRange(below, above+"\x00"), func(r client.Row) bool { got = append(got, r.Key()); return true }); err != nil ||
			!slices.Contains(got, below) || !slices.Contains(got, above) || !slices.Contains(got, split+"-probe") {
			t.Fatalf("read %s across the split at %q: %q, %v", name, split, got, err)
		}
	}
	// METADATA as the admin and the CLI see it: root and META tablets,
	// all served, none overlapping, as the root names them (polled: the
	// master learns a META split a moment after the root has it).
	var info *client.TableInfo
	for {
		var err error
		metas = metaTablets(t, ctx, cl)
		info, err = cl.Admin().TableInfo(ctx, metadata.Table)
		if err != nil {
			t.Fatal(err)
		}
		if len(info.Tablets) == len(metas)+1 || ctx.Err() != nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("METADATA: the root and %d META tablets", len(metas))
	if got := len(info.Tablets); got != len(metas)+1 {
		for _, tb := range info.Tablets {
			t.Logf("METADATA tablet %d [%x, %x) on %s", tb.ID, tb.StartKey, tb.EndKey, tb.ServerAddr)
		}
		for _, d := range metas {
			t.Logf("root row: META tablet %d [%x, %x) on %s", d.TabletId, d.StartRow, d.EndRow, d.ServerAddress)
		}
		t.Errorf("describe METADATA lists %d tablets, want the root and %d META", got, len(metas))
	}
	for i, tb := range info.Tablets {
		if tb.ServerAddr == "" {
			t.Errorf("METADATA tablet %d unassigned in describe", tb.ID)
		}
		if i > 0 && tb.StartKey != info.Tablets[i-1].EndKey {
			t.Errorf("describe METADATA: tablet %d starts at %x, the previous ends at %x", tb.ID, tb.StartKey, info.Tablets[i-1].EndKey)
		}
	}
	if err := cl.Admin().MergeTablets(ctx, metadata.Table, string(metas[0].EndRow)); err == nil || !strings.Contains(err.Error(), "do not merge") {
		t.Errorf("merge of META tablets = %v, want a refusal", err)
	}
	// Garbage collection ran all along (every 300ms, 1s grace) while
	// METADATA split: no live tablet lost a file.
	checkManifestsComplete(t, ctx, c)
}

// servedBy returns the index of the live server serving tablet id, or -1.
func servedBy(t *testing.T, ctx context.Context, c *testcluster.Cluster, id uint64) int {
	t.Helper()
	for i, s := range c.Servers {
		if !alive(c, i) {
			continue
		}
		st, err := s.TS.ServerStatus(ctx, &tabletpb.ServerStatusRequest{})
		if err != nil {
			continue
		}
		for _, ts := range st.Tablets {
			if ts.Tablet.TabletId == id {
				return i
			}
		}
	}
	return -1
}

func alive(c *testcluster.Cluster, i int) bool { return !c.Servers[i].Killed() }

// TestKillServerWithMetaTablet: the tablet server holding a META tablet
// other than the first dies abruptly while clients write with sync
// durability; the master recovers its log and reassigns the META tablet
// (and the user tablets it held), and every acknowledged write is
// readable afterwards.
func TestKillServerWithMetaTablet(t *testing.T) {
	c := startLogged(t, testcluster.Options{MemFS: true, Servers: 4})
	cl := dial(t, c)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	tables := createTables(t, ctx, cl, 3, manyKeys(12))
	splitMetaAt(t, ctx, c, cl, tables)
	metas := metaTablets(t, ctx, cl)
	victim := -1
	for _, d := range metas[1:] {
		if i := servedBy(t, ctx, c, d.TabletId); i >= 0 {
			victim = i
			break
		}
	}
	if victim < 0 {
		t.Fatalf("no server serves a non-first META tablet\n%s", c.Dump(ctx))
	}
	w := &writer{acked: map[string]string{}}
	wctx, stopWriters := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Add(1)
		go func() { defer wg.Done(); w.run(wctx, cl.Open(tables[i%len(tables)]), i) }()
	}
	time.Sleep(time.Second) // let the writers write
	c.KillServer(victim)
	t.Logf("killed tablet server %d (%s), which served a non-first META tablet", victim, c.Servers[victim].Addr)
	if err := waitMetaServed(ctx, t, c, cl); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second) // writes after the recovery too
	stopWriters()
	wg.Wait()
	if err := c.WaitAllAssigned(ctx); err != nil {
		t.Fatal(err)
	}
	// Verify through a fresh client, which locates every tablet anew
	// through the root and the (reassigned) META tablets.
	fresh := dial(t, c)
	w.mu.Lock()
	acked := len(w.acked)
	lost := 0
	for row, val := range w.acked {
		var tbl *client.Table
		for i := range 4 {
			if strings.Contains(row, fmt.Sprintf("-w%d-", i)) {
				tbl = fresh.Open(tables[i%len(tables)])
			}
		}
		r, err := tbl.ReadRow(ctx, row)
		if err != nil || r == nil || string(r["f"][0].Value) != val {
			lost++
			if lost <= 5 {
				t.Errorf("acknowledged row %q = %v, %v; want %q", row, r, err, val)
			}
		}
	}
	w.mu.Unlock()
	if lost > 0 {
		t.Fatalf("%d of %d acknowledged writes lost", lost, acked)
	}
	if acked == 0 {
		t.Fatal("no write was acknowledged")
	}
	t.Logf("verified %d acknowledged writes (%d writes failed)", acked, w.fails)
	for _, name := range tables {
		info, err := cl.Admin().TableInfo(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.CheckTablets(ctx, info.ID); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
}

// splitMetaAt splits METADATA on request (SplitTable on METADATA) at the
// rows of the second and third tables, so that each table's rows are in
// their own META tablet, and waits for the root to name them.
func splitMetaAt(t *testing.T, ctx context.Context, c *testcluster.Cluster, cl *client.Client, tables []string) {
	t.Helper()
	for _, name := range tables[1:] {
		info, err := cl.Admin().TableInfo(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		if err := cl.Admin().SplitTable(ctx, metadata.Table, string(metadata.TableStart(info.ID))); err != nil {
			t.Fatalf("split METADATA at table %s: %v", name, err)
		}
	}
	metas := waitMetaSplits(t, ctx, cl, len(tables))
	if err := c.CheckTablets(ctx, metadata.TableID); err != nil {
		t.Fatalf("METADATA's tablets: %v", err)
	}
	t.Logf("METADATA has %d META tablets", len(metas))
}

// waitMetaServed waits until METADATA's tablets are covered exactly once
// by live servers and the root names a live server for each META tablet.
func waitMetaServed(ctx context.Context, t *testing.T, c *testcluster.Cluster, cl *client.Client) error {
	t.Helper()
	for {
		err := c.CheckTablets(ctx, metadata.TableID)
		if err == nil {
			for _, d := range metaTablets(t, ctx, cl) {
				if i := servedBy(t, ctx, c, d.TabletId); i < 0 || c.Servers[i].Addr != d.ServerAddress {
					err = fmt.Errorf("META tablet %d: root says %q, served by server %d", d.TabletId, d.ServerAddress, i)
					break
				}
			}
		}
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("METADATA not served again: %v\n%s", err, c.Dump(ctx))
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// tabletSet is every tablet of the given tables (METADATA included) as
// the live servers report them: "table/id [start,end)", sorted.
func tabletSet(t *testing.T, ctx context.Context, c *testcluster.Cluster, tables map[uint64]bool) []string {
	t.Helper()
	var out []string
	for i, s := range c.Servers {
		if !alive(c, i) {
			continue
		}
		st, err := s.TS.ServerStatus(ctx, &tabletpb.ServerStatusRequest{})
		if err != nil {
			t.Fatalf("status of %s: %v", s.Addr, err)
		}
		for _, ts := range st.Tablets {
			d := ts.Tablet
			if tables[d.TableId] {
				out = append(out, fmt.Sprintf("%d/%d [%x,%x)", d.TableId, d.TabletId, d.StartRow, d.EndRow))
			}
		}
	}
	sort.Strings(out)
	return out
}

// TestMasterFailoverAfterMetaSplit: the active master dies after METADATA
// has split; the standby rebuilds its state from the root and every META
// tablet, and no tablet is lost, doubled or left unassigned.
func TestMasterFailoverAfterMetaSplit(t *testing.T) {
	c := startLogged(t, testcluster.Options{MemFS: true})
	cl := dial(t, c)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	tables := createTables(t, ctx, cl, 3, manyKeys(10))
	splitMetaAt(t, ctx, c, cl, tables)
	if err := c.WaitAllAssigned(ctx); err != nil {
		t.Fatal(err)
	}
	ids := map[uint64]bool{metadata.TableID: true}
	want := map[string][]client.TabletInfo{}
	for _, name := range append([]string{metadata.Table}, tables...) {
		info, err := cl.Admin().TableInfo(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		ids[info.ID] = true
		want[name] = info.Tablets
	}
	before := tabletSet(t, ctx, c, ids)
	mi := c.ActiveMaster()
	c.KillMaster(mi)
	t.Logf("killed the active master %d", mi)
	// A fresh client sees everything before the new master is even up:
	// nothing depends on the master's memory.
	checkEveryTablet(t, ctx, dial(t, c), tables, "before-election")
	ni, err := c.WaitActiveMaster(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.WaitAllAssigned(ctx); err != nil {
		t.Fatal(err)
	}
	// The new master's view: the same tablets, each on a server.
	for name, tablets := range want {
		var info *client.TableInfo
		for {
			info, err = cl.Admin().TableInfo(ctx, name)
			if err == nil && len(info.Tablets) == len(tablets) {
				break
			}
			select {
			case <-ctx.Done():
				t.Fatalf("describe %s on the new master: %+v, %v; want %d tablets", name, info, err, len(tablets))
			case <-time.After(100 * time.Millisecond):
			}
		}
		for i, tb := range info.Tablets {
			w := tablets[i]
			if tb.ID != w.ID || tb.StartKey != w.StartKey || tb.EndKey != w.EndKey || tb.ServerAddr == "" {
				t.Errorf("%s tablet %d on the new master: %+v; before: %+v", name, i, tb, w)
			}
		}
	}
	after := tabletSet(t, ctx, c, ids)
	if !slices.Equal(before, after) {
		t.Fatalf("tablets served before the failover:\n%s\nafter (master %d):\n%s", strings.Join(before, "\n"), ni, strings.Join(after, "\n"))
	}
	for id := range ids {
		if err := c.CheckTablets(ctx, id); err != nil {
			t.Fatalf("table %d: %v", id, err)
		}
	}
	t.Logf("%d tablets (%d tables and METADATA) unchanged across the failover", len(after), len(tables))
	checkEveryTablet(t, ctx, dial(t, c), tables, "after-election")
	// The new master routes METADATA writes to the right META tablet: a
	// new table's rows and a split in a later META tablet.
	if err := cl.Admin().CreateTable(ctx, "late", map[string]client.GCPolicy{"f": client.MaxVersionsPolicy(1)}, "m"); err != nil {
		t.Fatal(err)
	}
	if err := cl.Admin().SplitTable(ctx, tables[2], "k005-m"); err != nil {
		t.Fatal(err)
	}
	checkEveryTablet(t, ctx, dial(t, c), append(tables, "late"), "after-writes")
}

// TestGCAfterMetaSplits: after METADATA splits, garbage collection rounds
// delete no file any live tablet's manifest lists (the META daughters
// share their parent's files until they compact), and the split META
// parent's files are collected once the daughters have compacted them
// away.
func TestGCAfterMetaSplits(t *testing.T) {
	c := startLogged(t, testcluster.Options{MemFS: true})
	cl := dial(t, c)
	fs := c.FS()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	tables := createTables(t, ctx, cl, 3, manyKeys(20))
	// The META tablet's files before it splits.
	metaDir := metadata.TabletDir(metadata.TableID, metadata.MetaTabletID)
	var parentFiles []string
	for len(parentFiles) == 0 {
		if err := cl.Admin().FlushTable(ctx, metadata.Table); err != nil {
			t.Fatalf("flush METADATA: %v", err)
		}
		var err error
		if parentFiles, err = readManifest(ctx, fs, metaDir); err != nil {
			t.Fatal(err)
		}
		if ctx.Err() != nil {
			t.Fatal("METADATA's META tablet has no SSTable after flushes")
		}
	}
	splitMetaAt(t, ctx, c, cl, tables)
	// Rounds run every 300ms with a 1s grace period: check through
	// several that every file a live tablet lists exists.
	deadline := time.Now().Add(4 * time.Second)
	for time.Now().Before(deadline) {
		checkManifestsComplete(t, ctx, c)
		time.Sleep(200 * time.Millisecond) // between rounds; nothing to wait for
	}
	waitGone(t, ctx, fs, parentFiles...)
	t.Logf("the split META parent's %d SSTables were collected", len(parentFiles))
	checkManifestsComplete(t, ctx, c)
	checkEveryTablet(t, ctx, dial(t, c), tables, "after-gc")
	if err := c.CheckTablets(ctx, metadata.TableID); err != nil {
		t.Fatal(err)
	}
}

// checkManifestsComplete checks that every SSTable the manifest of every
// tablet the live servers serve lists exists.
func checkManifestsComplete(t *testing.T, ctx context.Context, c *testcluster.Cluster) {
	t.Helper()
	fs := c.FS()
	for i, s := range c.Servers {
		if !alive(c, i) {
			continue
		}
		st, err := s.TS.ServerStatus(ctx, &tabletpb.ServerStatusRequest{})
		if err != nil {
			t.Fatal(err)
		}
		for _, ts := range st.Tablets {
			info, err := readManifest(ctx, fs, ts.Tablet.Dir)
			if err != nil {
				t.Fatalf("manifest of tablet %d: %v", ts.Tablet.TabletId, err)
			}
			for _, f := range info {
				if _, err := fs.Stat(ctx, f); err != nil {
					// The tablet may have compacted it away since the
					// manifest read: check again before failing.
					again, rerr := readManifest(ctx, fs, ts.Tablet.Dir)
					if rerr == nil && slices.Contains(again, f) {
						t.Fatalf("tablet %d (table %d) lists %s, which is gone: %v", ts.Tablet.TabletId, ts.Tablet.TableId, f, err)
					}
				}
			}
		}
	}
}

// readManifest lists the SSTables of the newest manifest in dir.
func readManifest(ctx context.Context, fs dfs.FS, dir string) ([]string, error) {
	info, err := tablet.ReadManifest(ctx, fs, dir)
	if err != nil || info == nil {
		return nil, err
	}
	return info.Files, nil
}
