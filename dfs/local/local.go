// Package local implements dfs.FS on one local directory. Sync is a real
// fdatasync of the file; Create, Rename and Remove also fsync the directories
// they change, so that a file's existence and name survive a crash (the same
// contract the replicated dfs gives). It is the file system of `cellar
// standalone` and of single-machine tests and benchmarks.
//
// An FS is safe for concurrent use; see dfs.File for what a File allows.
package local

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"

	"cellar/dfs"
)

// FS is a dfs.FS rooted at one local directory.
type FS struct {
	root string
	// dirMu serialises directory creation so two Creates in a new directory
	// both see it synced.
	dirMu sync.Mutex
}

var _ dfs.FS = (*FS)(nil)

// Open returns an FS rooted at dir, creating dir if needed.
func Open(dir string) (*FS, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("cellar/dfs/local: %w", err)
	}
	if err := os.MkdirAll(abs, 0o755); err != nil {
		return nil, fmt.Errorf("cellar/dfs/local: %w", err)
	}
	return &FS{root: abs}, nil
}

// Root is the local directory the FS is rooted at.
func (l *FS) Root() string { return l.root }

func (l *FS) path(name string, root bool) (string, error) {
	if err := dfs.CheckPath(name, root); err != nil {
		return "", err
	}
	return filepath.Join(l.root, filepath.FromSlash(name)), nil
}

func mapErr(op, name string, err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("cellar/dfs/local: %s %s: %w", op, name, dfs.ErrNotFound)
	case errors.Is(err, fs.ErrExist):
		return fmt.Errorf("cellar/dfs/local: %s %s: %w", op, name, dfs.ErrExist)
	case errors.Is(err, syscall.ENOSPC), errors.Is(err, syscall.EDQUOT):
		return fmt.Errorf("cellar/dfs/local: %s %s: %w: %v", op, name, dfs.ErrNoSpace, err)
	case errors.Is(err, syscall.EISDIR), errors.Is(err, syscall.ENOTEMPTY):
		return fmt.Errorf("cellar/dfs/local: %s %s: %w: %v", op, name, dfs.ErrIsDir, err)
	}
	return fmt.Errorf("cellar/dfs/local: %s %s: %w", op, name, err)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// mkdirAll creates dir and its missing parents, syncing each parent so the
// new entries are durable.
func (l *FS) mkdirAll(dir string) error {
	if fi, err := os.Stat(dir); err == nil && fi.IsDir() {
		return nil
	}
	l.dirMu.Lock()
	defer l.dirMu.Unlock()
	var missing []string
	for d := dir; d != l.root && len(d) > len(l.root); d = filepath.Dir(d) {
		if _, err := os.Stat(d); err == nil {
			break
		}
		missing = append(missing, d)
	}
	for i := len(missing) - 1; i >= 0; i-- {
		if err := os.Mkdir(missing[i], 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
			return err
		}
		if err := syncDir(filepath.Dir(missing[i])); err != nil {
			return err
		}
	}
	return nil
}

// Create implements dfs.FS.
func (l *FS) Create(ctx context.Context, name string) (dfs.File, error) {
	p, err := l.path(name, false)
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := l.mkdirAll(filepath.Dir(p)); err != nil {
		return nil, mapErr("create", name, err)
	}
	f, err := os.OpenFile(p, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	if err != nil {
		return nil, mapErr("create", name, err)
	}
	if err := syncDir(filepath.Dir(p)); err != nil {
		f.Close()
		return nil, mapErr("create", name, err)
	}
	return &file{f: f, name: name}, nil
}

type file struct {
	f      *os.File
	name   string
	mu     sync.Mutex // guards size, err, closed against the concurrent Sync
	size   int64
	err    error // sticky: after a failed write or sync the file is lost for writing
	closed bool
}

func (f *file) Write(p []byte) (int, error) {
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		return 0, fmt.Errorf("cellar/dfs/local: write %s: %w", f.name, dfs.ErrClosed)
	}
	if f.err != nil {
		err := f.err
		f.mu.Unlock()
		return 0, err
	}
	f.mu.Unlock()
	n, err := f.f.Write(p)
	f.mu.Lock()
	f.size += int64(n)
	if err != nil {
		f.err = mapErr("write", f.name, err)
		err = f.err
	}
	f.mu.Unlock()
	return n, err
}

func (f *file) Sync(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	f.mu.Lock()
	if f.err != nil {
		err := f.err
		f.mu.Unlock()
		return err
	}
	f.mu.Unlock()
	err := unix.Fdatasync(int(f.f.Fd()))
	if err != nil {
		f.mu.Lock()
		f.err = mapErr("sync", f.name, err)
		err = f.err
		f.mu.Unlock()
	}
	return err
}

func (f *file) Close() error {
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		return fmt.Errorf("cellar/dfs/local: close %s: %w", f.name, dfs.ErrClosed)
	}
	f.closed = true
	serr := f.err
	f.mu.Unlock()
	if serr == nil {
		if err := unix.Fdatasync(int(f.f.Fd())); err != nil {
			serr = mapErr("sync", f.name, err)
		}
	}
	if err := f.f.Close(); err != nil && serr == nil {
		serr = mapErr("close", f.name, err)
	}
	return serr
}

func (f *file) Size() int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.size
}

// Open implements dfs.FS.
func (l *FS) Open(ctx context.Context, name string) (dfs.ReadFile, error) {
	p, err := l.path(name, false)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(p)
	if err != nil {
		return nil, mapErr("open", name, err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, mapErr("open", name, err)
	}
	if fi.IsDir() {
		f.Close()
		return nil, fmt.Errorf("cellar/dfs/local: open %s: %w", name, dfs.ErrIsDir)
	}
	return &readFile{f: f, size: fi.Size(), name: name}, nil
}

type readFile struct {
	f    *os.File
	size int64
	name string
}

func (r *readFile) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("cellar/dfs/local: read %s at %d: %w", r.name, off, dfs.ErrInvalidPath)
	}
	if off >= r.size {
		if len(p) == 0 && off == r.size {
			return 0, nil
		}
		return 0, io.EOF
	}
	short := false
	if rem := r.size - off; int64(len(p)) > rem {
		p, short = p[:rem], true
	}
	n, err := r.f.ReadAt(p, off)
	if err == nil && short {
		err = io.EOF
	}
	return n, err
}

func (r *readFile) Close() error { return r.f.Close() }
func (r *readFile) Size() int64  { return r.size }

// Stat implements dfs.FS.
func (l *FS) Stat(ctx context.Context, name string) (dfs.FileInfo, error) {
	p, err := l.path(name, true)
	if err != nil {
		return dfs.FileInfo{}, err
	}
	fi, err := os.Stat(p)
	if err != nil {
		return dfs.FileInfo{}, mapErr("stat", name, err)
	}
	return dfs.FileInfo{Name: name, Size: fi.Size(), IsDir: fi.IsDir(), ModTime: fi.ModTime()}, nil
}

// List implements dfs.FS.
func (l *FS) List(ctx context.Context, dir string) ([]dfs.FileInfo, error) {
	p, err := l.path(dir, true)
	if err != nil {
		return nil, err
	}
	ents, err := os.ReadDir(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, mapErr("list", dir, err)
	}
	out := make([]dfs.FileInfo, 0, len(ents))
	for _, e := range ents {
		fi, err := e.Info()
		if err != nil {
			continue // removed while listing
		}
		out = append(out, dfs.FileInfo{Name: e.Name(), Size: fi.Size(), IsDir: e.IsDir(), ModTime: fi.ModTime()})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// Rename implements dfs.FS.
func (l *FS) Rename(ctx context.Context, oldname, newname string) error {
	po, err := l.path(oldname, false)
	if err != nil {
		return err
	}
	pn, err := l.path(newname, false)
	if err != nil {
		return err
	}
	if _, err := os.Stat(po); err != nil {
		return mapErr("rename", oldname, err)
	}
	if err := l.mkdirAll(filepath.Dir(pn)); err != nil {
		return mapErr("rename", newname, err)
	}
	if err := os.Rename(po, pn); err != nil {
		return mapErr("rename", oldname, err)
	}
	if err := syncDir(filepath.Dir(pn)); err != nil {
		return mapErr("rename", newname, err)
	}
	if filepath.Dir(po) != filepath.Dir(pn) {
		if err := syncDir(filepath.Dir(po)); err != nil {
			return mapErr("rename", oldname, err)
		}
	}
	return nil
}

// Remove implements dfs.FS.
func (l *FS) Remove(ctx context.Context, name string) error {
	p, err := l.path(name, false)
	if err != nil {
		return err
	}
	if err := os.Remove(p); err != nil {
		return mapErr("remove", name, err)
	}
	return mapErr("remove", name, syncDir(filepath.Dir(p)))
}
