package master

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"testing"

	"github.com/hashicorp/raft"
	"go.uber.org/goleak"

	"cellar/dfs"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func apply(t *testing.T, m *fsm, c command) result {
	t.Helper()
	b, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	return m.Apply(&raft.Log{Data: b}).(result)
}

func TestFSMLeaseAndChunkLifecycle(t *testing.T) {
	m := newFSM()
	steps := []struct {
		c    command
		want error
	}{
		{command{Op: opCreate, Path: "a/f", Holder: "w1", Replication: 3}, nil},
		{command{Op: opCreate, Path: "a/f", Holder: "w1", Replication: 3}, nil}, // retried
		{command{Op: opCreate, Path: "a/f", Holder: "w2"}, dfs.ErrExist},
		{command{Op: opCreate, Path: "a/f/g", Holder: "w2"}, dfs.ErrExist},
		{command{Op: opCreate, Path: "a", Holder: "w2"}, dfs.ErrIsDir},
		{command{Op: opAllocate, Path: "a/f", Holder: "w2", Index: 0}, dfs.ErrLeaseLost},
		{command{Op: opAllocate, Path: "a/f", Holder: "w1", Index: 0}, nil},
		{command{Op: opAllocate, Path: "a/f", Holder: "w1", Index: 0}, nil}, // retried
		{command{Op: opAllocate, Path: "a/f", Holder: "w1", Index: 1, Length: 100}, nil},
		{command{Op: opAllocate, Path: "a/f", Holder: "w1", Index: 5}, dfs.ErrInvalidPath},
		{command{Op: opBump, Path: "a/f", Holder: "w1", Handle: 2}, nil},
		{command{Op: opBump, Path: "a/f", Holder: "w1", Handle: 1}, dfs.ErrLeaseLost},
		{command{Op: opComplete, Path: "a/f", Holder: "w1", Length: 40, Chunks: 2}, nil},
		{command{Op: opComplete, Path: "a/f", Holder: "w1", Length: 40, Chunks: 2}, nil}, // retried
		{command{Op: opComplete, Path: "a/f", Holder: "w2", Length: 40, Chunks: 2}, dfs.ErrLeaseLost},
		{command{Op: opRename, Path: "a", NewPath: "b"}, nil},
		{command{Op: opDelete, Path: "a/f"}, dfs.ErrNotFound},
		{command{Op: opDelete, Path: "b"}, dfs.ErrIsDir},
	}
	for i, s := range steps {
		r := apply(t, m, s.c)
		if (s.want == nil) != (r.err == nil) || (s.want != nil && !errors.Is(r.err, s.want)) {
			t.Fatalf("step %d %+v: err %v, want %v", i, s.c, r.err, s.want)
		}
	}
	f := m.files["b/f"]
	if f == nil || f.UC || f.length() != 140 || len(f.Chunks) != 2 || f.Chunks[1].Version != 2 {
		t.Fatalf("b/f = %+v", f)
	}
	if ref := m.index[2]; ref.path != "b/f" || ref.index != 1 {
		t.Fatalf("index[2] = %+v after rename", ref)
	}
}

func TestFSMRecoverFencesWriter(t *testing.T) {
	m := newFSM()
	apply(t, m, command{Op: opCreate, Path: "log", Holder: "w"})
	apply(t, m, command{Op: opAllocate, Path: "log", Holder: "w", Index: 0})
	r := apply(t, m, command{Op: opRecoverBegin, Path: "log"})
	if r.err != nil || r.old != 1 || r.chunk.Version != 2 {
		t.Fatalf("recover_begin = %+v", r)
	}
	for _, c := range []command{
		{Op: opAllocate, Path: "log", Holder: "w", Index: 1},
		{Op: opBump, Path: "log", Holder: "w", Handle: 1},
		{Op: opComplete, Path: "log", Holder: "w", Chunks: 1},
	} {
		if r := apply(t, m, c); !errors.Is(r.err, dfs.ErrLeaseLost) {
			t.Fatalf("%s by the fenced writer = %v, want ErrLeaseLost", c.Op, r.err)
		}
	}
	apply(t, m, command{Op: opRecoverEnd, Path: "log", Handle: 1, Length: 77})
	if f := m.files["log"]; f.UC || f.length() != 77 {
		t.Fatalf("after recovery %+v", f)
	}
	if r := apply(t, m, command{Op: opRecoverBegin, Path: "log"}); r.err != nil || !r.empty {
		t.Fatalf("recovery of a sealed file = %+v, want a no-op", r)
	}
	// An allocated but never written chunk is dropped.
	apply(t, m, command{Op: opCreate, Path: "empty", Holder: "w"})
	apply(t, m, command{Op: opAllocate, Path: "empty", Holder: "w", Index: 0})
	r = apply(t, m, command{Op: opRecoverBegin, Path: "empty"})
	apply(t, m, command{Op: opRecoverEnd, Path: "empty", Handle: r.chunk.Handle, Length: 0})
	if f := m.files["empty"]; f.UC || len(f.Chunks) != 0 {
		t.Fatalf("empty after recovery %+v", f)
	}
	if _, ok := m.index[r.chunk.Handle]; ok {
		t.Fatal("dropped chunk still indexed")
	}
}

type memSink struct {
	bytes.Buffer
}

func (s *memSink) ID() string    { return "mem" }
func (s *memSink) Cancel() error { return nil }
func (s *memSink) Close() error  { return nil }

func TestFSMSnapshotRestore(t *testing.T) {
	m := newFSM()
	apply(t, m, command{Op: opCreate, Path: "x/y", Holder: "w", Replication: 2})
	apply(t, m, command{Op: opAllocate, Path: "x/y", Holder: "w", Index: 0})
	apply(t, m, command{Op: opComplete, Path: "x/y", Holder: "w", Length: 9, Chunks: 1})
	snap, err := m.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	var sink memSink
	if err := snap.Persist(&sink); err != nil {
		t.Fatal(err)
	}
	snap.Release()
	m2 := newFSM()
	if err := m2.Restore(io.NopCloser(&sink)); err != nil {
		t.Fatal(err)
	}
	if f := m2.files["x/y"]; f == nil || f.length() != 9 || f.Replication != 2 || m2.nextHandle != 2 || m2.index[1].path != "x/y" {
		t.Fatalf("restored %+v next %d", f, m2.nextHandle)
	}
}

func TestFSMList(t *testing.T) {
	m := newFSM()
	for _, p := range []string{"d/2", "d/1", "d/sub/3", "e"} {
		apply(t, m, command{Op: opCreate, Path: p, Holder: "w"})
	}
	var got []string
	for _, e := range m.listLocked("d") {
		got = append(got, e.name)
	}
	if want := []string{"1", "2", "sub"}; len(got) != 3 || got[0] != want[0] || got[1] != want[1] || got[2] != want[2] {
		t.Fatalf("list(d) = %v, want %v", got, want)
	}
	if l := m.listLocked(""); len(l) != 2 || !l[0].isDir || l[1].name != "e" {
		t.Fatalf("list(root) = %+v", l)
	}
}

// FuzzCommand applies arbitrary log entries: the FSM must never panic and
// must keep its chunk index consistent with its files.
func FuzzCommand(f *testing.F) {
	for _, c := range []command{
		{Op: opCreate, Path: "a", Holder: "w"},
		{Op: opAllocate, Path: "a", Holder: "w"},
		{Op: opRename, Path: "a", NewPath: "b/c"},
		{Op: opRecoverBegin, Path: "a"},
		{Op: opRecoverEnd, Path: "a", Handle: 1, Length: 3},
	} {
		b, _ := json.Marshal(c)
		f.Add(b, b)
	}
	f.Fuzz(func(t *testing.T, a, b []byte) {
		m := newFSM()
		apply(t, m, command{Op: opCreate, Path: "a", Holder: "w"})
		apply(t, m, command{Op: opAllocate, Path: "a", Holder: "w"})
		for _, d := range [][]byte{a, b, a} {
			if _, ok := m.Apply(&raft.Log{Data: d}).(result); !ok {
				t.Fatal("Apply returned a non-result")
			}
		}
		n := 0
		for p, f := range m.files {
			for i, ch := range f.Chunks {
				n++
				if ref, ok := m.index[ch.Handle]; !ok || ref.path != p || ref.index != i {
					t.Fatalf("chunk %d of %s indexed as %+v", i, p, ref)
				}
			}
		}
		if n != len(m.index) {
			t.Fatalf("index holds %d chunks, files %d", len(m.index), n)
		}
	})
}
