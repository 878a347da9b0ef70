// Package memfs implements dfs.FS in memory for tests. CrashClone returns a
// copy holding only what a crash would leave: every file truncated to the
// length its last successful Sync made durable. Create, Rename and Remove are
// durable at once, as they are in dfs/local and the replicated dfs.
//
// An FS is safe for concurrent use.
package memfs

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"time"

	"cellar/dfs"
)

// FS is an in-memory dfs.FS.
type FS struct {
	mu    sync.Mutex
	files map[string]*node // guarded by mu
	dirs  map[string]bool  // guarded by mu; explicit directories ("" is the root)
}

type node struct {
	mu      sync.Mutex
	data    []byte
	synced  int
	sealed  bool
	modTime time.Time
}

var _ dfs.FS = (*FS)(nil)

// New returns an empty FS.
func New() *FS {
	return &FS{files: map[string]*node{}, dirs: map[string]bool{"": true}}
}

// CrashClone returns a new FS holding what a crash at this instant would
// leave: each file's synced prefix. Open files of the receiver keep writing
// to the receiver only.
func (m *FS) CrashClone() *FS {
	m.mu.Lock()
	defer m.mu.Unlock()
	c := New()
	for d := range m.dirs {
		c.dirs[d] = true
	}
	for name, n := range m.files {
		n.mu.Lock()
		c.files[name] = &node{data: append([]byte(nil), n.data[:n.synced]...), synced: n.synced, sealed: true, modTime: n.modTime}
		n.mu.Unlock()
	}
	return c
}

func (m *FS) mkdirsLocked(dir string) error {
	for d := dir; d != ""; d = dfs.Dir(d) {
		if _, ok := m.files[d]; ok {
			return fmt.Errorf("cellar/dfs/memfs: %s: %w", d, dfs.ErrExist)
		}
		m.dirs[d] = true
	}
	return nil
}

// Create implements dfs.FS.
func (m *FS) Create(ctx context.Context, name string) (dfs.File, error) {
	if err := dfs.CheckPath(name, false); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.files[name]; ok || m.dirs[name] {
		return nil, fmt.Errorf("cellar/dfs/memfs: create %s: %w", name, dfs.ErrExist)
	}
	if err := m.mkdirsLocked(dfs.Dir(name)); err != nil {
		return nil, err
	}
	n := &node{modTime: time.Now()}
	m.files[name] = n
	return &file{fs: m, n: n, name: name}, nil
}

type file struct {
	fs     *FS
	n      *node
	name   string
	closed bool
}

func (f *file) Write(p []byte) (int, error) {
	f.n.mu.Lock()
	defer f.n.mu.Unlock()
	if f.closed || f.n.sealed {
		return 0, fmt.Errorf("cellar/dfs/memfs: write %s: %w", f.name, dfs.ErrClosed)
	}
	f.n.data = append(f.n.data, p...)
	f.n.modTime = time.Now()
	return len(p), nil
}

func (f *file) Sync(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	f.n.mu.Lock()
	defer f.n.mu.Unlock()
	if f.n.sealed && !f.closed {
		return fmt.Errorf("cellar/dfs/memfs: sync %s: %w", f.name, dfs.ErrClosed)
	}
	f.n.synced = len(f.n.data)
	return nil
}

func (f *file) Close() error {
	f.n.mu.Lock()
	defer f.n.mu.Unlock()
	if f.closed {
		return fmt.Errorf("cellar/dfs/memfs: close %s: %w", f.name, dfs.ErrClosed)
	}
	f.closed, f.n.sealed = true, true
	f.n.synced = len(f.n.data)
	return nil
}

func (f *file) Size() int64 {
	f.n.mu.Lock()
	defer f.n.mu.Unlock()
	return int64(len(f.n.data))
}

// Open implements dfs.FS.
func (m *FS) Open(ctx context.Context, name string) (dfs.ReadFile, error) {
	if err := dfs.CheckPath(name, false); err != nil {
		return nil, err
	}
	m.mu.Lock()
	n, ok := m.files[name]
	isDir := m.dirs[name]
	m.mu.Unlock()
	if isDir {
		return nil, fmt.Errorf("cellar/dfs/memfs: open %s: %w", name, dfs.ErrIsDir)
	}
	if !ok {
		return nil, fmt.Errorf("cellar/dfs/memfs: open %s: %w", name, dfs.ErrNotFound)
	}
	n.mu.Lock()
	// Readers see the synced length; the data slice below it never changes.
	data := n.data[:n.synced:n.synced]
	n.mu.Unlock()
	return &readFile{data: data, name: name}, nil
}

type readFile struct {
	data []byte
	name string
}

func (r *readFile) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("cellar/dfs/memfs: read %s at %d: %w", r.name, off, dfs.ErrInvalidPath)
	}
	if off >= int64(len(r.data)) {
		if len(p) == 0 && off == int64(len(r.data)) {
			return 0, nil
		}
		return 0, io.EOF
	}
	n := copy(p, r.data[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

func (r *readFile) Close() error { return nil }
func (r *readFile) Size() int64  { return int64(len(r.data)) }

// Stat implements dfs.FS.
func (m *FS) Stat(ctx context.Context, name string) (dfs.FileInfo, error) {
	if err := dfs.CheckPath(name, true); err != nil {
		return dfs.FileInfo{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.dirs[name] {
		return dfs.FileInfo{Name: name, IsDir: true}, nil
	}
	n, ok := m.files[name]
	if !ok {
		return dfs.FileInfo{}, fmt.Errorf("cellar/dfs/memfs: stat %s: %w", name, dfs.ErrNotFound)
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	return dfs.FileInfo{Name: name, Size: int64(n.synced), ModTime: n.modTime}, nil
}

// List implements dfs.FS.
func (m *FS) List(ctx context.Context, dir string) ([]dfs.FileInfo, error) {
	if err := dfs.CheckPath(dir, true); err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	prefix := dir
	if prefix != "" {
		prefix += "/"
	}
	var out []dfs.FileInfo
	for d := range m.dirs {
		if d != "" && strings.HasPrefix(d, prefix) && !strings.Contains(d[len(prefix):], "/") {
			out = append(out, dfs.FileInfo{Name: d[len(prefix):], IsDir: true})
		}
	}
	for name, n := range m.files {
		if strings.HasPrefix(name, prefix) && !strings.Contains(name[len(prefix):], "/") {
			n.mu.Lock()
			out = append(out, dfs.FileInfo{Name: name[len(prefix):], Size: int64(n.synced), ModTime: n.modTime})
			n.mu.Unlock()
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// Rename implements dfs.FS.
func (m *FS) Rename(ctx context.Context, oldname, newname string) error {
	if err := dfs.CheckPath(oldname, false); err != nil {
		return err
	}
	if err := dfs.CheckPath(newname, false); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	n, ok := m.files[oldname]
	if !ok {
		return fmt.Errorf("cellar/dfs/memfs: rename %s: %w", oldname, dfs.ErrNotFound)
	}
	if m.dirs[newname] {
		return fmt.Errorf("cellar/dfs/memfs: rename to %s: %w", newname, dfs.ErrIsDir)
	}
	if err := m.mkdirsLocked(dfs.Dir(newname)); err != nil {
		return err
	}
	delete(m.files, oldname)
	m.files[newname] = n
	return nil
}

// Remove implements dfs.FS.
func (m *FS) Remove(ctx context.Context, name string) error {
	if err := dfs.CheckPath(name, false); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.dirs[name] {
		prefix := name + "/"
		for f := range m.files {
			if strings.HasPrefix(f, prefix) {
				return fmt.Errorf("cellar/dfs/memfs: remove %s: %w", name, dfs.ErrIsDir)
			}
		}
		for d := range m.dirs {
			if strings.HasPrefix(d, prefix) {
				return fmt.Errorf("cellar/dfs/memfs: remove %s: %w", name, dfs.ErrIsDir)
			}
		}
		delete(m.dirs, name)
		return nil
	}
	if _, ok := m.files[name]; !ok {
		return fmt.Errorf("cellar/dfs/memfs: remove %s: %w", name, dfs.ErrNotFound)
	}
	delete(m.files, name)
	return nil
}
