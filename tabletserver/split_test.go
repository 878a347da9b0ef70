package tabletserver

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"cellar/internal/metadata"
	"cellar/internal/serr"
	"cellar/lock"
	datapb "cellar/proto/cellar/data/v1"
	tabletpb "cellar/proto/cellar/tablet/v1"
	"cellar/tablet"
)

// writeUntil writes rows "w<writer>-<n>" with sync durability until stop is
// closed, retrying NOT_SERVING (as a client refreshing its cache would),
// and returns the rows whose write was acknowledged.
func writeUntil(ctx context.Context, t *testing.T, ts *tserver, writer int, rng *rand.Rand, stop <-chan struct{}, count *atomic.Int64) []string {
	var acked []string
	for n := 0; ; n++ {
		select {
		case <-stop:
			return acked
		default:
		}
		row := fmt.Sprintf("%c%03d-w%d", 'a'+rng.IntN(26), n, writer)
		for {
			err := ts.mutate(ctx, row, set("cf", "q", 1, row))
			if err == nil {
				acked = append(acked, row)
				count.Add(1)
				break
			}
			if !errors.Is(err, serr.ErrNotServing) {
				t.Errorf("write %s: %v", row, err)
				return acked
			}
		}
	}
}

func readAll(t *testing.T, ctx context.Context, ts *tserver, ranges ...[2]string) map[string]bool {
	t.Helper()
	got := map[string]bool{}
	for _, r := range ranges {
		rows, _, err := ts.read(ctx, &tabletpb.ReadRowsRequest{Rows: rangeSet(r[0], r[1])})
		if err != nil {
			t.Fatalf("read [%q, %q): %v", r[0], r[1], err)
		}
		for _, row := range rows {
			got[string(row.Key)] = true
		}
	}
	return got
}

func TestSplit_RPCUnderConcurrentWrites_NoAckedWriteLost(t *testing.T) {
	seed := testSeed(t)
	e := newEnv(t)
	ts := e.startServer(lock.ClientOptions{}, nil)
	parent := e.newTablet("", "")
	e.load(ts, parent)

	stop := make(chan struct{})
	var wg sync.WaitGroup
	results := make([][]string, 4)
	var count atomic.Int64
	for w := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[w] = writeUntil(e.ctx, t, ts, w, rand.New(rand.NewPCG(seed, uint64(w))), stop, &count)
		}()
	}
	// Let some writes land, then split in the middle of the stream.
	e.eventually("writes before the split", func() bool { return count.Load() >= 200 })
	resp, err := ts.cl.SplitTablet(e.ctx, &tabletpb.SplitTabletRequest{Master: e.seq, TabletId: parent.TabletId, SplitRow: []byte("m")})
	if err != nil {
		close(stop)
		wg.Wait()
		t.Fatalf("SplitTablet: %v", err)
	}
	// Keep writing to both daughters for a little while.
	before := count.Load()
	e.eventually("writes after the split", func() bool { return count.Load() >= before+200 })
	e.eventually("writes to both daughters", func() bool {
		st, err := ts.cl.ServerStatus(e.ctx, &tabletpb.ServerStatusRequest{})
		if err != nil {
			return false
		}
		n := 0
		for _, tb := range st.Tablets {
			if tb.MemtableBytes > 0 {
				n++
			}
		}
		return n == 2
	})
	close(stop)
	wg.Wait()

	left, right := resp.Left, resp.Right
	if left.TabletId == parent.TabletId || right.TabletId != parent.TabletId || string(left.EndRow) != "m" || string(right.StartRow) != "m" ||
		left.Dir != tabletDir(testTable, left.TabletId) || right.Dir != parent.Dir {
		t.Fatalf("daughters left=%v right=%v of parent %v", left, right, parent)
	}
	// METADATA: the left daughter's row was written (the commit point).
	v, ok := e.meta.lastSet(metadata.RowKey(testTable, []byte("m")), metadata.QualTablet)
	if !ok {
		t.Fatal("no METADATA write for the left daughter")
	}
	got, err := metadata.DecodeTablet(v)
	if err != nil || got.TabletId != left.TabletId || string(got.EndRow) != "m" {
		t.Fatalf("METADATA left daughter = %v, %v; want %v", got, err, left)
	}
	if loc, ok := e.meta.lastSet(metadata.RowKey(testTable, []byte("m")), metadata.QualLocation); !ok {
		t.Fatal("no info:loc for the left daughter")
	} else if id, _, _ := metadata.DecodeLocation(loc); id != ts.s.ID() {
		t.Fatalf("info:loc server = %q, want %q", id, ts.s.ID())
	}
	if v, ok := e.meta.lastSet(metadata.RowKey(testTable, nil), metadata.QualTablet); !ok {
		t.Fatal("parent row not updated")
	} else if d, _ := metadata.DecodeTablet(v); string(d.GetStartRow()) != "m" {
		t.Fatalf("parent row now %v, want the right daughter", d)
	}

	var acked []string
	for _, r := range results {
		acked = append(acked, r...)
	}
	sort.Strings(acked)
	have := readAll(t, e.ctx, ts, [2]string{"", "m"}, [2]string{"m", ""})
	for _, row := range acked {
		if !have[row] {
			t.Errorf("acknowledged write %q lost across the split", row)
		}
	}
	t.Logf("%d acknowledged writes, all readable in the daughters", len(acked))

	// The old parent range as one read is no longer one tablet: the left
	// daughter serves up to m and says so.
	_, msgs, err := ts.read(e.ctx, &tabletpb.ReadRowsRequest{Rows: rangeSet("", "")})
	if err != nil || !msgs[len(msgs)-1].TabletEnd || string(msgs[len(msgs)-1].ResumeKey) != "m" {
		t.Fatalf("read of the whole table: %v (want tablet_end at m)", err)
	}
}

func TestSplit_Automatic(t *testing.T) {
	e := newEnv(t)
	ts := e.startServer(lock.ClientOptions{}, func(o *Options) { o.SplitSize = 64 << 10 })
	parent := e.newTablet("", "")
	e.load(ts, parent)
	// Incompressible values: SSTable blocks are compressed, and the split
	// trigger counts bytes on disk.
	val := make([]byte, 1024)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range 200 {
		for j := range val {
			val[j] = byte(rng.Uint32())
		}
		row := fmt.Sprintf("row%04d", i)
		if err := ts.mutate(e.ctx, row, &datapb.Mutation{Mutation: &datapb.Mutation_SetCell_{SetCell: &datapb.Mutation_SetCell{Family: "cf", Qualifier: []byte("q"), Timestamp: 1, Value: val}}}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := ts.cl.FlushTablet(e.ctx, &tabletpb.FlushTabletRequest{TableId: testTable}); err != nil {
		t.Fatal(err)
	}
	e.eventually("an automatic split", func() bool {
		st, err := ts.cl.ServerStatus(e.ctx, &tabletpb.ServerStatusRequest{})
		return err == nil && len(st.Tablets) >= 2
	})
	st, _ := ts.cl.ServerStatus(e.ctx, &tabletpb.ServerStatusRequest{})
	var ranges [][2]string
	for _, tb := range st.Tablets {
		ranges = append(ranges, [2]string{string(tb.Tablet.StartRow), string(tb.Tablet.EndRow)})
	}
	// Reads may race a further split: retry on NOT_SERVING by re-reading status.
	have := map[string]bool{}
	for _, r := range ranges {
		rows, _, err := ts.read(e.ctx, &tabletpb.ReadRowsRequest{Rows: rangeSet(r[0], r[1])})
		if err != nil && !errors.Is(err, serr.ErrNotServing) {
			t.Fatal(err)
		}
		for _, row := range rows {
			have[string(row.Key)] = true
		}
	}
	if len(have) == 0 {
		t.Fatalf("no rows readable after the split; tablets %v", ranges)
	}
	t.Logf("tablets after automatic split: %v (%d rows read)", ranges, len(have))
}

func TestSplit_ServerPicksRowAndRefusesBadRequests(t *testing.T) {
	e := newEnv(t)
	ts := e.startServer(lock.ClientOptions{}, nil)
	parent := e.newTablet("b", "y")
	e.load(ts, parent)
	split := func(id uint64, row string, seq *tabletpb.Sequencer) (*tabletpb.SplitTabletResponse, error) {
		resp, err := ts.cl.SplitTablet(e.ctx, &tabletpb.SplitTabletRequest{Master: seq, TabletId: id, SplitRow: []byte(row)})
		return resp, serr.Wire.FromStatus(err)
	}
	if _, err := split(parent.TabletId, "", e.seq); !errors.Is(err, serr.ErrInvalidArgument) {
		t.Fatalf("split of an empty tablet = %v, want ErrInvalidArgument (no split key)", err)
	}
	for i := range 20 {
		if err := ts.mutate(e.ctx, fmt.Sprintf("k%02d", i), set("cf", "q", 1, "v")); err != nil {
			t.Fatal(err)
		}
	}
	for _, bad := range []string{"a", "b", "y", "z"} {
		if _, err := split(parent.TabletId, bad, e.seq); !errors.Is(err, serr.ErrInvalidArgument) {
			t.Errorf("split at %q = %v, want ErrInvalidArgument", bad, err)
		}
	}
	if _, err := split(parent.TabletId, "k05", &tabletpb.Sequencer{Path: e.seq.Path, Mode: e.seq.Mode, Generation: e.seq.Generation + 99}); !errors.Is(err, serr.ErrStaleSequencer) {
		t.Fatalf("split with a stale sequencer = %v", err)
	}
	if _, err := split(424242, "k05", e.seq); !errors.Is(err, serr.ErrNotServing) {
		t.Fatalf("split of an unknown tablet = %v, want ErrNotServing", err)
	}
	resp, err := split(parent.TabletId, "", e.seq)
	if err != nil {
		t.Fatal(err)
	}
	mid := string(resp.Left.EndRow)
	if mid <= "k00" || mid > "k19" || string(resp.Right.StartRow) != mid || string(resp.Left.StartRow) != "b" || string(resp.Right.EndRow) != "y" {
		t.Fatalf("split at the server's row: left %v right %v", resp.Left, resp.Right)
	}
	have := readAll(t, e.ctx, ts, [2]string{"b", mid}, [2]string{mid, "y"})
	if len(have) != 20 {
		t.Fatalf("read %d rows after the split, want 20", len(have))
	}
	// The root tablet never splits; a META tablet splits like a user
	// tablet, and its split is committed by the left daughter's row in
	// the root tablet (a METADATA key of table 0).
	sch := testSchema()
	sch.TableId = 0
	root := &datapb.TabletDescriptor{TableId: 0, TabletId: 1, EndRow: []byte("\x00\x00\x00\x00\x00\x00\x00\x01"), Dir: "tables/0/tablets/1"}
	meta := &datapb.TabletDescriptor{TableId: 0, TabletId: 2, StartRow: root.EndRow, Dir: "tables/0/tablets/2"}
	for _, d := range []*datapb.TabletDescriptor{root, meta} {
		if _, err := ts.cl.LoadTablet(e.ctx, &tabletpb.LoadTabletRequest{Master: e.seq, Tablet: d, Schema: sch}); err != nil {
			t.Fatal(err)
		}
	}
	for _, row := range []string{"\x00\x00\x00\x00\x00\x00\x00\x00\x02", "\xff\x01", "\xff\x09"} {
		if _, err := ts.cl.MutateRow(e.ctx, &tabletpb.MutateRowRequest{TableId: 0, RowKey: []byte(row), Mutations: []*datapb.Mutation{set("cf", "q", 1, "v")}}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := split(1, "\x00\x00\x00\x00\x00\x00\x00\x00\x01", e.seq); !errors.Is(err, serr.ErrInvalidArgument) {
		t.Fatalf("split of the root tablet = %v, want ErrInvalidArgument", err)
	}
	resp, err = split(2, "\xff\x05", e.seq)
	if err != nil {
		t.Fatalf("split of a META tablet: %v", err)
	}
	if string(resp.Left.EndRow) != "\xff\x05" || resp.Left.TableId != 0 || resp.Right.TabletId != 2 {
		t.Fatalf("META split: left %v right %v", resp.Left, resp.Right)
	}
	leftRow := metadata.RowKey(0, []byte("\xff\x05"))
	if !metadata.InRoot(leftRow) {
		t.Fatalf("a META tablet's row %x is not in the root tablet's range", leftRow)
	}
	if _, ok := e.meta.lastSet(leftRow, metadata.QualTablet); !ok {
		t.Fatalf("the META split was not committed to the left daughter's row %x", leftRow)
	}
	for _, row := range []string{"\xff\x01", "\xff\x09"} { // one in each daughter
		if _, err := ts.cl.MutateRow(e.ctx, &tabletpb.MutateRowRequest{TableId: 0, RowKey: []byte(row), Mutations: []*datapb.Mutation{set("cf", "q", 2, "w")}}); err != nil {
			t.Fatalf("write %q after the META split: %v", row, err)
		}
	}
}

// A split whose tablet another server opened meanwhile (tablet.ErrFenced)
// fails, and the server drops the parent instead of reopening it: a reopen
// would claim a newer epoch of the directory and fence the tablet's new
// owner in turn.
func TestSplit_FencedParentIsNotReopened(t *testing.T) {
	e := newEnv(t)
	reached, release := make(chan struct{}), make(chan struct{})
	ts := e.startServer(lock.ClientOptions{}, func(o *Options) {
		o.Hooks.AfterSplitIntent = func(ctx context.Context, _ uint64) error {
			close(reached)
			<-release
			return nil
		}
	})
	parent := e.newTablet("", "")
	e.load(ts, parent)
	for i := range 20 {
		if err := ts.mutate(e.ctx, fmt.Sprintf("r%02d", i), set("cf", "q", 1, "v")); err != nil {
			t.Fatal(err)
		}
	}
	splitErr := make(chan error, 1)
	go func() {
		_, err := ts.cl.SplitTablet(e.ctx, &tabletpb.SplitTabletRequest{Master: e.seq, TabletId: parent.GetTabletId(), SplitRow: []byte("r10")})
		splitErr <- err
	}()
	<-reached
	// Another server opens the tablet while the split waits.
	ts.s.mu.RLock()
	fams := ts.s.mu.byID[parent.GetTabletId()].fams
	ts.s.mu.RUnlock()
	other, err := tablet.Open(e.ctx, &tablet.Options{FS: e.fs, Dir: parent.GetDir(), ID: tablet.ID(parent.GetTabletId()), Families: fams, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	claimsBefore := maxClaim(t, e, parent.GetDir())
	close(release)
	if err := <-splitErr; err == nil {
		t.Fatal("the split of a tablet another server opened succeeded")
	}
	ts.s.mu.RLock()
	_, served := ts.s.mu.byID[parent.GetTabletId()]
	ts.s.mu.RUnlock()
	if served {
		t.Error("the fenced parent is still served after its split failed")
	}
	if got := maxClaim(t, e, parent.GetDir()); got != claimsBefore {
		t.Errorf("the tablet's directory has claim %d after the failed split, want %d (the other server's): the parent was reopened", got, claimsBefore)
	}
}

// maxClaim returns the highest CLAIM-<e> epoch in dir.
func maxClaim(t *testing.T, e *env, dir string) uint64 {
	t.Helper()
	ents, err := e.fs.List(e.ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	var hi uint64
	for _, en := range ents {
		if n, ok := strings.CutPrefix(en.Name, "CLAIM-"); ok {
			if v, err := strconv.ParseUint(n, 10, 64); err == nil && v > hi {
				hi = v
			}
		}
	}
	return hi
}
