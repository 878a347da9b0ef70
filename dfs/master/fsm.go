package master

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"

	"github.com/hashicorp/raft"

	"cellar/dfs"
)

// The namespace is a raft state machine. Every mutation is a command,
// JSON-encoded in the raft log; Apply is deterministic (the leader stamps
// the time into the command). Replica locations are deliberately not part
// of it: they are soft state rebuilt from chunkserver block reports.

type chunkMeta struct {
	Handle   uint64 `json:"h"`
	Version  uint64 `json:"v"`
	Length   uint64 `json:"l"`
	Complete bool   `json:"c"` // Length is settled
}

type fileMeta struct {
	Replication uint32      `json:"r"`
	Chunks      []chunkMeta `json:"ch"`
	UC          bool        `json:"uc"`             // under construction
	Holder      string      `json:"holder"`         // lease holder while UC ("" once fenced)
	LastHolder  string      `json:"last,omitempty"` // the writer that completed it (idempotent retries)
	MTime       int64       `json:"mt"`
}

func (f *fileMeta) length() uint64 {
	var n uint64
	for _, c := range f.Chunks {
		if c.Complete {
			n += c.Length
		}
	}
	return n
}

type chunkRef struct {
	path  string
	index int
}

// fsm is the namespace. mu guards files, index and nextHandle; raft calls
// Apply on its own goroutine, the master's handlers read under RLock.
type fsm struct {
	mu         sync.RWMutex
	files      map[string]*fileMeta
	index      map[uint64]chunkRef // chunk handle -> owner
	nextHandle uint64
}

func newFSM() *fsm {
	return &fsm{files: map[string]*fileMeta{}, index: map[uint64]chunkRef{}, nextHandle: 1}
}

// command is one namespace mutation.
type command struct {
	Op          string `json:"op"`
	Path        string `json:"path,omitempty"`
	NewPath     string `json:"new,omitempty"`
	Holder      string `json:"holder,omitempty"`
	Replication uint32 `json:"r,omitempty"`
	Index       uint32 `json:"i,omitempty"`
	Length      uint64 `json:"l,omitempty"`
	Handle      uint64 `json:"h,omitempty"`
	Chunks      uint32 `json:"n,omitempty"`
	Now         int64  `json:"now"`
}

const (
	opCreate       = "create"
	opAllocate     = "allocate"
	opBump         = "bump"
	opComplete     = "complete"
	opRename       = "rename"
	opDelete       = "delete"
	opRecoverBegin = "recover_begin"
	opRecoverEnd   = "recover_end"
)

// result is what Apply returns for a command.
type result struct {
	err   error
	chunk chunkMeta
	old   uint64 // recover_begin: the version the writer had
	empty bool   // recover_begin: the file had no chunk to recover
}

// Apply implements raft.FSM.
func (m *fsm) Apply(l *raft.Log) any {
	var c command
	if err := json.Unmarshal(l.Data, &c); err != nil {
		return result{err: fmt.Errorf("cellar/dfs/master: undecodable command at index %d: %v", l.Index, err)}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.applyLocked(c)
}

func lease(path string) error {
	return fmt.Errorf("cellar/dfs/master: %s: %w", path, dfs.ErrLeaseLost)
}

func (m *fsm) applyLocked(c command) result {
	switch c.Op {
	case opCreate:
		if f, ok := m.files[c.Path]; ok {
			if f.UC && f.Holder == c.Holder && len(f.Chunks) == 0 {
				return result{} // a retried Create
			}
			return result{err: fmt.Errorf("cellar/dfs/master: create %s: %w", c.Path, dfs.ErrExist)}
		}
		if m.isDirLocked(c.Path) {
			return result{err: fmt.Errorf("cellar/dfs/master: create %s: %w", c.Path, dfs.ErrIsDir)}
		}
		for d := dfs.Dir(c.Path); d != ""; d = dfs.Dir(d) {
			if _, ok := m.files[d]; ok {
				return result{err: fmt.Errorf("cellar/dfs/master: create %s: parent %s is a file: %w", c.Path, d, dfs.ErrExist)}
			}
		}
		m.files[c.Path] = &fileMeta{Replication: c.Replication, UC: true, Holder: c.Holder, MTime: c.Now}
		return result{}
	case opAllocate:
		f, ok := m.files[c.Path]
		if !ok {
			return result{err: fmt.Errorf("cellar/dfs/master: allocate in %s: %w", c.Path, dfs.ErrNotFound)}
		}
		if !f.UC || f.Holder != c.Holder {
			return result{err: lease(c.Path)}
		}
		n := uint32(len(f.Chunks))
		if c.Index+1 == n {
			return result{chunk: f.Chunks[n-1]} // a retried allocation
		}
		if c.Index != n {
			return result{err: fmt.Errorf("cellar/dfs/master: allocate chunk %d of %s, which has %d: %w", c.Index, c.Path, n, dfs.ErrInvalidPath)}
		}
		if n > 0 {
			f.Chunks[n-1].Length = c.Length
			f.Chunks[n-1].Complete = true
		}
		ch := chunkMeta{Handle: m.nextHandle, Version: 1}
		m.nextHandle++
		f.Chunks = append(f.Chunks, ch)
		f.MTime = c.Now
		m.index[ch.Handle] = chunkRef{c.Path, int(n)}
		return result{chunk: ch}
	case opBump:
		f, ok := m.files[c.Path]
		if !ok {
			return result{err: fmt.Errorf("cellar/dfs/master: bump in %s: %w", c.Path, dfs.ErrNotFound)}
		}
		if !f.UC || f.Holder != c.Holder || len(f.Chunks) == 0 || f.Chunks[len(f.Chunks)-1].Handle != c.Handle {
			return result{err: lease(c.Path)}
		}
		f.Chunks[len(f.Chunks)-1].Version++
		return result{chunk: f.Chunks[len(f.Chunks)-1]}
	case opComplete:
		f, ok := m.files[c.Path]
		if !ok {
			return result{err: fmt.Errorf("cellar/dfs/master: complete %s: %w", c.Path, dfs.ErrNotFound)}
		}
		if !f.UC {
			if f.LastHolder == c.Holder && c.Holder != "" {
				return result{} // a retried Complete
			}
			return result{err: lease(c.Path)}
		}
		if f.Holder != c.Holder {
			return result{err: lease(c.Path)}
		}
		if int(c.Chunks) != len(f.Chunks) {
			return result{err: fmt.Errorf("cellar/dfs/master: complete %s with %d chunks, it has %d: %w", c.Path, c.Chunks, len(f.Chunks), dfs.ErrLeaseLost)}
		}
		if n := len(f.Chunks); n > 0 {
			f.Chunks[n-1].Length = c.Length
			f.Chunks[n-1].Complete = true
		}
		f.UC, f.Holder, f.LastHolder, f.MTime = false, "", c.Holder, c.Now
		return result{}
	case opRecoverBegin:
		f, ok := m.files[c.Path]
		if !ok {
			return result{err: fmt.Errorf("cellar/dfs/master: recover %s: %w", c.Path, dfs.ErrNotFound)}
		}
		if !f.UC {
			return result{empty: true}
		}
		f.Holder, f.LastHolder = "", ""
		n := len(f.Chunks)
		if n == 0 {
			f.UC, f.MTime = false, c.Now
			return result{empty: true}
		}
		last := &f.Chunks[n-1]
		old := last.Version
		last.Version++
		return result{chunk: *last, old: old}
	case opRecoverEnd:
		f, ok := m.files[c.Path]
		if !ok {
			return result{err: fmt.Errorf("cellar/dfs/master: recover %s: %w", c.Path, dfs.ErrNotFound)}
		}
		n := len(f.Chunks)
		if !f.UC || n == 0 || f.Chunks[n-1].Handle != c.Handle {
			return result{} // already settled
		}
		if c.Length == 0 {
			delete(m.index, c.Handle)
			f.Chunks = f.Chunks[:n-1]
		} else {
			f.Chunks[n-1].Length = c.Length
			f.Chunks[n-1].Complete = true
		}
		f.UC, f.Holder, f.MTime = false, "", c.Now
		return result{}
	case opRename:
		return result{err: m.renameLocked(c.Path, c.NewPath, c.Now)}
	case opDelete:
		if f, ok := m.files[c.Path]; ok {
			m.dropLocked(c.Path, f)
			return result{}
		}
		if m.isDirLocked(c.Path) {
			return result{err: fmt.Errorf("cellar/dfs/master: remove %s: directory not empty: %w", c.Path, dfs.ErrIsDir)}
		}
		return result{err: fmt.Errorf("cellar/dfs/master: remove %s: %w", c.Path, dfs.ErrNotFound)}
	}
	return result{err: fmt.Errorf("cellar/dfs/master: unknown command %q", c.Op)}
}

func (m *fsm) dropLocked(path string, f *fileMeta) {
	for _, ch := range f.Chunks {
		delete(m.index, ch.Handle)
	}
	delete(m.files, path)
}

func (m *fsm) renameLocked(oldp, newp string, now int64) error {
	if oldp == newp {
		if _, ok := m.files[oldp]; ok || m.isDirLocked(oldp) {
			return nil
		}
		return fmt.Errorf("cellar/dfs/master: rename %s: %w", oldp, dfs.ErrNotFound)
	}
	if strings.HasPrefix(newp, oldp+"/") {
		return fmt.Errorf("cellar/dfs/master: rename %s into itself (%s): %w", oldp, newp, dfs.ErrInvalidPath)
	}
	for d := dfs.Dir(newp); d != ""; d = dfs.Dir(d) {
		if _, ok := m.files[d]; ok {
			return fmt.Errorf("cellar/dfs/master: rename to %s: parent %s is a file: %w", newp, d, dfs.ErrExist)
		}
	}
	if f, ok := m.files[oldp]; ok {
		if m.isDirLocked(newp) {
			return fmt.Errorf("cellar/dfs/master: rename %s over directory %s: %w", oldp, newp, dfs.ErrIsDir)
		}
		if victim, ok := m.files[newp]; ok {
			m.dropLocked(newp, victim)
		}
		delete(m.files, oldp)
		m.files[newp] = f
		m.reindexLocked(newp, f)
		return nil
	}
	// A directory: move every file under it.
	prefix := oldp + "/"
	var moved []string
	for p := range m.files {
		if strings.HasPrefix(p, prefix) {
			moved = append(moved, p)
		}
	}
	if len(moved) == 0 {
		return fmt.Errorf("cellar/dfs/master: rename %s: %w", oldp, dfs.ErrNotFound)
	}
	if _, ok := m.files[newp]; ok || m.isDirLocked(newp) {
		return fmt.Errorf("cellar/dfs/master: rename directory %s over existing %s: %w", oldp, newp, dfs.ErrExist)
	}
	for _, p := range moved {
		f := m.files[p]
		delete(m.files, p)
		np := newp + "/" + strings.TrimPrefix(p, prefix)
		m.files[np] = f
		m.reindexLocked(np, f)
	}
	return nil
}

func (m *fsm) reindexLocked(path string, f *fileMeta) {
	for i, ch := range f.Chunks {
		m.index[ch.Handle] = chunkRef{path, i}
	}
}

// isDirLocked reports whether some file lives under dir.
func (m *fsm) isDirLocked(dir string) bool {
	prefix := dir + "/"
	for p := range m.files {
		if strings.HasPrefix(p, prefix) {
			return true
		}
	}
	return false
}

// dirEntry is one List result.
type dirEntry struct {
	name  string
	isDir bool
	file  *fileMeta
}

// listLocked returns the entries directly inside dir, sorted by name.
func (m *fsm) listLocked(dir string) []dirEntry {
	prefix := ""
	if dir != "" {
		prefix = dir + "/"
	}
	seen := map[string]*dirEntry{}
	for p, f := range m.files {
		if !strings.HasPrefix(p, prefix) {
			continue
		}
		rest := p[len(prefix):]
		if i := strings.IndexByte(rest, '/'); i >= 0 {
			name := rest[:i]
			if _, ok := seen[name]; !ok {
				seen[name] = &dirEntry{name: name, isDir: true}
			}
			continue
		}
		seen[rest] = &dirEntry{name: rest, file: f}
	}
	out := make([]dirEntry, 0, len(seen))
	for _, e := range seen {
		out = append(out, *e)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out
}

// snapshotState is the persisted form of the namespace.
type snapshotState struct {
	Files      map[string]*fileMeta `json:"files"`
	NextHandle uint64               `json:"next_handle"`
}

// Snapshot implements raft.FSM: it deep-copies the namespace (fast, under
// the lock) and encodes it in Persist.
func (m *fsm) Snapshot() (raft.FSMSnapshot, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	st := snapshotState{Files: make(map[string]*fileMeta, len(m.files)), NextHandle: m.nextHandle}
	for p, f := range m.files {
		cp := *f
		cp.Chunks = append([]chunkMeta(nil), f.Chunks...)
		st.Files[p] = &cp
	}
	return &snapshot{st}, nil
}

// Restore implements raft.FSM.
func (m *fsm) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	var st snapshotState
	if err := json.NewDecoder(rc).Decode(&st); err != nil {
		return fmt.Errorf("cellar/dfs/master: restore snapshot: %w", err)
	}
	if st.Files == nil {
		st.Files = map[string]*fileMeta{}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.files, m.nextHandle = st.Files, max(st.NextHandle, 1)
	m.index = map[uint64]chunkRef{}
	for p, f := range m.files {
		m.reindexLocked(p, f)
	}
	return nil
}

type snapshot struct{ st snapshotState }

func (s *snapshot) Persist(sink raft.SnapshotSink) error {
	if err := json.NewEncoder(sink).Encode(s.st); err != nil {
		sink.Cancel()
		return err
	}
	return sink.Close()
}

func (s *snapshot) Release() {}
