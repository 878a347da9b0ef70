package tabletserver

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"cellar/dfs"
	"cellar/dfs/faultfs"
	"cellar/internal/serr"
	"cellar/lock"
	"cellar/lock/locktest"
	datapb "cellar/proto/cellar/data/v1"
	tabletpb "cellar/proto/cellar/tablet/v1"
	"cellar/wal"
)

// splitLog does the master's part of recovering a dead server: it splits
// the server's commit log by tablet into one wal directory per tablet,
// tables/<T>/tablets/<tid>/recovered/<server id>, and returns them by id.
func splitLog(ctx context.Context, t *testing.T, fs dfs.FS, serverID string, tablets ...*datapb.TabletDescriptor) map[uint64]string {
	t.Helper()
	byID := map[uint64]*datapb.TabletDescriptor{}
	for _, d := range tablets {
		byID[d.TabletId] = d
	}
	entries := map[uint64][]wal.Entry{}
	if _, err := wal.Replay(ctx, fs, logDir(serverID), nil, func(en wal.Entry) error {
		en.Data = append([]byte(nil), en.Data...)
		entries[en.Tablet] = append(entries[en.Tablet], en)
		return nil
	}); err != nil {
		t.Fatalf("replay %s: %v", logDir(serverID), err)
	}
	dirs := map[uint64]string{}
	for id, es := range entries {
		d := byID[id]
		if d == nil {
			t.Fatalf("log holds entries of unknown tablet %d", id)
		}
		dir := dfs.Join(d.Dir, "recovered", serverID)
		l, err := wal.Open(ctx, fs, &wal.Options{Dir: dir, Logger: quiet})
		if err != nil {
			t.Fatal(err)
		}
		for _, en := range es {
			if err := l.Append(ctx, en, false); err != nil {
				t.Fatal(err)
			}
		}
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		dirs[id] = dir
	}
	return dirs
}

func TestCrash_NewServerReplaysRecoveredEdits(t *testing.T) {
	e := newEnv(t)
	a := e.startServer(lock.ClientOptions{}, nil)
	left, right := e.newTablet("", "m"), e.newTablet("m", "")
	e.load(a, left)
	e.load(a, right)
	var acked []string
	for i := range 300 {
		row := fmt.Sprintf("%c-%04d", "cx"[i%2], i)
		if err := a.mutate(e.ctx, row, set("cf", "q", 1, row)); err != nil {
			t.Fatal(err)
		}
		acked = append(acked, row)
		if i == 100 { // some data in SSTables, the rest only in the log
			if _, err := a.cl.FlushTablet(e.ctx, &tabletpb.FlushTabletRequest{TableId: testTable, TabletId: left.TabletId}); err != nil {
				t.Fatal(err)
			}
		}
	}
	a.s.Kill()
	if err := a.mutate(e.ctx, "c-late", set("cf", "q", 1, "x")); !errors.Is(err, serr.ErrNotServing) {
		t.Fatalf("write after Kill = %v, want ErrNotServing", err)
	}
	a.lock.Close()
	e.fs = e.fs.CrashClone() // only what was synced survives

	dirs := splitLog(e.ctx, t, e.fs, a.s.ID(), left, right)
	b := e.startServer(lock.ClientOptions{}, nil)
	e.load(b, left, dirs[left.TabletId])
	e.load(b, right, dirs[right.TabletId])
	have := readAll(t, e.ctx, b, [2]string{"", "m"}, [2]string{"m", ""})
	for _, row := range acked {
		if !have[row] {
			t.Errorf("acknowledged sync write %q lost in the crash", row)
		}
	}
	if len(have) != len(acked) {
		t.Errorf("read %d rows, want %d", len(have), len(acked))
	}
}

func TestFencing_JeopardyStopsServingUntilSafe(t *testing.T) {
	e := newEnv(t)
	part := locktest.NewPartition()
	ts := e.startServer(lock.ClientOptions{Lease: 5 * time.Second, Dialer: part.Dial}, func(o *Options) { o.JeopardyBound = 100 * time.Millisecond })
	e.load(ts, e.newTablet("", ""))
	if err := ts.mutate(e.ctx, "r", set("cf", "q", 1, "v")); err != nil {
		t.Fatal(err)
	}
	part.Cut()
	e.eventually("self-fencing", func() bool {
		return errors.Is(ts.mutate(e.ctx, "r", set("cf", "q", 2, "v")), serr.ErrNotServing)
	})
	st, err := ts.cl.ServerStatus(e.ctx, &tabletpb.ServerStatusRequest{})
	if err != nil || st.Serving {
		t.Fatalf("ServerStatus while fenced = %v, %v; want serving=false", st, err)
	}
	if _, _, err := ts.read(e.ctx, &tabletpb.ReadRowsRequest{Rows: rangeSet("", "")}); !errors.Is(err, serr.ErrNotServing) {
		t.Fatalf("read while fenced = %v, want ErrNotServing", err)
	}
	part.Heal()
	e.eventually("serving again", func() bool {
		if !ts.lock.LostAt().IsZero() {
			t.Fatalf("session lost before the partition healed (lease 5s)")
		}
		return ts.mutate(e.ctx, "r", set("cf", "q", 3, "v")) == nil
	})
}

// loseSession cuts ts off the lock service and waits until its session is
// lost and its tablets are closed.
func (e *env) loseSession(ts *tserver, part *locktest.Partition) {
	e.t.Helper()
	part.Cut()
	select {
	case <-ts.lock.Lost():
	case <-e.ctx.Done():
		e.t.Fatal("session never lost")
	}
	e.eventually("tablets closed after the loss", func() bool {
		st, err := ts.cl.ServerStatus(e.ctx, &tabletpb.ServerStatusRequest{})
		return err == nil && !st.Serving && len(st.Tablets) == 0
	})
}

func TestFencing_SessionLostStopsServer(t *testing.T) {
	e := newEnv(t)
	part := locktest.NewPartition()
	ts := e.startServer(lock.ClientOptions{Lease: time.Second, Dialer: part.Dial}, nil)
	e.load(ts, e.newTablet("", ""))
	if err := ts.mutate(e.ctx, "r", set("cf", "q", 1, "v")); err != nil {
		t.Fatal(err)
	}
	e.loseSession(ts, part)
	part.Heal()
	if err := ts.mutate(e.ctx, "r", set("cf", "q", 2, "v")); !errors.Is(err, serr.ErrNotServing) {
		t.Fatalf("write after session loss = %v, want ErrNotServing", err)
	}
}

func TestLogFailure_ServerGivesUpTabletsAndLockNode(t *testing.T) {
	e := newEnv(t)
	var ffs *faultfs.FS
	ts := e.startServer(lock.ClientOptions{}, func(o *Options) { ffs = faultfs.New(e.fs); o.FS = ffs })
	e.load(ts, e.newTablet("", ""))
	if err := ts.mutate(e.ctx, "r", set("cf", "q", 1, "v")); err != nil {
		t.Fatal(err)
	}
	ffs.AddRule(faultfs.Rule{Op: faultfs.OpSync, Pattern: "servers/*/log/*", Nth: 1, Sticky: true})
	if err := ts.mutate(e.ctx, "r", set("cf", "q", 2, "v")); err == nil {
		t.Fatal("write acknowledged although the log's sync failed")
	}
	e.eventually("the server to stop after the log failed", func() bool {
		return errors.Is(ts.mutate(e.ctx, "r", set("cf", "q", 3, "v")), serr.ErrNotServing)
	})
	node := serversDir + "/" + ts.s.ID()
	e.eventually("its lock node to go", func() bool {
		_, found, err := e.master.Get(e.ctx, node)
		return err == nil && !found
	})
}

// A server whose session is lost drops its tablets without flushing them:
// their writes now live only in its commit log, which the master splits.
// The log releaser, which deletes files whose tablets have all flushed or
// left, must not take the dropped tablets for ones that left and delete
// the log under the master's recovery (acknowledged writes were lost that
// way when a paused server's session expired).
func TestFencing_SessionLostKeepsCommitLog(t *testing.T) {
	e := newEnv(t)
	part := locktest.NewPartition()
	ts := e.startServer(lock.ClientOptions{Lease: time.Second, Dialer: part.Dial}, func(o *Options) { o.walMaxFileSize = 1 << 10 })
	d := e.newTablet("", "")
	e.load(ts, d)
	const n = 40
	for i := range n {
		if err := ts.mutate(e.ctx, fmt.Sprintf("r%03d", i), set("cf", "q", 1, fmt.Sprintf("value-%03d-%0100d", i, i))); err != nil {
			t.Fatal(err)
		}
	}
	countLogged := func() int {
		got := 0
		if _, err := wal.Replay(e.ctx, e.fs, logDir(ts.s.ID()), nil, func(en wal.Entry) error {
			if en.Tablet == d.TabletId {
				got++
			}
			return nil
		}); err != nil {
			t.Fatalf("replay the commit log: %v", err)
		}
		return got
	}
	if got := countLogged(); got < n {
		t.Fatalf("before the loss the log holds %d entries of the tablet, want at least %d", got, n)
	}
	e.loseSession(ts, part)
	// The releaser runs every 100 ms here; give it several rounds.
	time.Sleep(time.Second)
	if got := countLogged(); got < n {
		t.Fatalf("after the session loss the log holds %d entries of the dropped tablet, want %d: the server deleted log files the master needs", got, n)
	}
}
