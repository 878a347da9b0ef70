// Package faultfs wraps a dfs.FS and injects faults by rule, for tests of
// the code above the file system (the commit log, SSTables, the tablet): the
// Nth Write or Sync fails (optionally only on names matching a pattern, and
// optionally for ever after the first failure), reads come back short or
// with an error, a byte is flipped on its way out of ReadAt, or writes fail
// for lack of space.
//
// Every error it injects wraps ErrInjected (and dfs.ErrNoSpace for
// ActionNoSpace), so that tests tell injected faults from real ones with
// errors.Is. With no rules an FS behaves exactly as the file system it wraps.
//
// An FS is safe for concurrent use, and rules may be added or cleared while
// files are open: every operation consults the rules in force when it runs.
package faultfs

import (
	"context"
	"errors"
	"fmt"
	"path"
	"sync"

	"cellar/dfs"
)

// ErrInjected is wrapped by every error this package makes up.
var ErrInjected = errors.New("cellar/dfs/faultfs: injected fault")

// Op is the kind of operation a rule applies to.
type Op uint8

// Operations a rule can match.
const (
	OpWrite  Op = iota + 1 // File.Write
	OpSync                 // File.Sync (and the sync inside File.Close)
	OpRead                 // ReadFile.ReadAt
	OpCreate               // FS.Create
	OpOpen                 // FS.Open
	OpRemove               // FS.Remove
	OpRename               // FS.Rename (matched against the old name)
)

func (o Op) String() string {
	switch o {
	case OpWrite:
		return "write"
	case OpSync:
		return "sync"
	case OpRead:
		return "read"
	case OpCreate:
		return "create"
	case OpOpen:
		return "open"
	case OpRemove:
		return "remove"
	case OpRename:
		return "rename"
	}
	return fmt.Sprintf("op(%d)", uint8(o))
}

// Action is what a rule does to an operation it fires on.
type Action uint8

// Actions. The zero value is ActionError.
const (
	// ActionError fails the operation without doing it: Write writes
	// nothing, Sync makes nothing durable, ReadAt reads nothing.
	ActionError Action = iota
	// ActionShort does half of the operation and then fails: Write hands
	// the first half of its bytes to the inner file (a torn write), ReadAt
	// returns the first half of what it read. Other operations just fail.
	ActionShort
	// ActionFlip lets a ReadAt succeed but inverts (XOR 0xFF) the byte at
	// file offset Rule.Offset if the read covers it. Only for OpRead.
	ActionFlip
	// ActionNoSpace fails the operation with an error wrapping both
	// ErrInjected and dfs.ErrNoSpace, writing nothing.
	ActionNoSpace
)

// Rule says which operations fail and how.
type Rule struct {
	Op Op
	// Pattern is matched with path.Match against the full file name given
	// to the FS (e.g. "log/*.log"); "" matches every name.
	Pattern string
	// Nth picks which matching operation fires, counting from 1 since the
	// rule was added: 0 fires on every matching operation; n fires on the
	// n-th only, or on the n-th and every later one when Sticky is set.
	Nth int
	// Sticky keeps the rule firing on every matching operation after it
	// first fires.
	Sticky bool
	Action Action
	// Offset is the file offset whose byte ActionFlip inverts (bytes).
	Offset int64
}

// FS is a dfs.FS that injects the faults its rules describe into the FS it
// wraps. Safe for concurrent use.
type FS struct {
	inner dfs.FS

	mu struct {
		sync.Mutex
		rules    []*rule // in order of addition
		injected int     // faults injected so far
	}
}

type rule struct {
	Rule
	seen  int  // matching operations so far
	fired bool // has fired at least once
}

var _ dfs.FS = (*FS)(nil)

// New returns an FS over inner with the given rules in force.
func New(inner dfs.FS, rules ...Rule) *FS {
	f := &FS{inner: inner}
	for _, r := range rules {
		f.AddRule(r)
	}
	return f
}

// AddRule puts r in force from now on; its Nth counts operations from now.
func (f *FS) AddRule(r Rule) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.mu.rules = append(f.mu.rules, &rule{Rule: r})
}

// ClearRules removes every rule; later operations pass straight through.
func (f *FS) ClearRules() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.mu.rules = nil
}

// Injected is the number of faults injected so far.
func (f *FS) Injected() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.mu.injected
}

// fire counts op on name against every rule and returns the first rule that
// fires, or nil. Every matching rule counts the operation, fired or not.
func (f *FS) fire(op Op, name string) *Rule {
	f.mu.Lock()
	defer f.mu.Unlock()
	var hit *Rule
	for _, r := range f.mu.rules {
		if r.Op != op {
			continue
		}
		if r.Pattern != "" {
			if ok, err := path.Match(r.Pattern, name); err != nil || !ok {
				continue
			}
		}
		r.seen++
		fires := r.Nth == 0 || r.seen == r.Nth || (r.Sticky && r.fired)
		if fires {
			r.fired = true
			if hit == nil {
				c := r.Rule
				hit = &c
			}
		}
	}
	if hit != nil {
		f.mu.injected++
	}
	return hit
}

// injectedErr is the error an action on op of name returns.
func injectedErr(r *Rule, name string) error {
	if r.Action == ActionNoSpace {
		return fmt.Errorf("cellar/dfs/faultfs: %s %s: %w: %w", r.Op, name, ErrInjected, dfs.ErrNoSpace)
	}
	return fmt.Errorf("cellar/dfs/faultfs: %s %s: %w", r.Op, name, ErrInjected)
}

// check returns the injected error for a whole-operation fault, or nil.
func (f *FS) check(op Op, name string) error {
	if r := f.fire(op, name); r != nil {
		return injectedErr(r, name)
	}
	return nil
}

// Create implements dfs.FS.
func (f *FS) Create(ctx context.Context, name string) (dfs.File, error) {
	if err := f.check(OpCreate, name); err != nil {
		return nil, err
	}
	w, err := f.inner.Create(ctx, name)
	if err != nil {
		return nil, err
	}
	return &file{fs: f, inner: w, name: name}, nil
}

// Open implements dfs.FS.
func (f *FS) Open(ctx context.Context, name string) (dfs.ReadFile, error) {
	if err := f.check(OpOpen, name); err != nil {
		return nil, err
	}
	r, err := f.inner.Open(ctx, name)
	if err != nil {
		return nil, err
	}
	return &readFile{fs: f, inner: r, name: name}, nil
}

// Stat implements dfs.FS.
func (f *FS) Stat(ctx context.Context, name string) (dfs.FileInfo, error) {
	return f.inner.Stat(ctx, name)
}

// List implements dfs.FS.
func (f *FS) List(ctx context.Context, dir string) ([]dfs.FileInfo, error) {
	return f.inner.List(ctx, dir)
}

// Rename implements dfs.FS.
func (f *FS) Rename(ctx context.Context, oldname, newname string) error {
	if err := f.check(OpRename, oldname); err != nil {
		return err
	}
	return f.inner.Rename(ctx, oldname, newname)
}

// Remove implements dfs.FS.
func (f *FS) Remove(ctx context.Context, name string) error {
	if err := f.check(OpRemove, name); err != nil {
		return err
	}
	return f.inner.Remove(ctx, name)
}

// RecoverLease passes through to the inner FS when it has leases; it is a
// no-op otherwise, as dfs.LeaseRecoverer allows for files with no writer.
func (f *FS) RecoverLease(ctx context.Context, name string) error {
	if lr, ok := f.inner.(dfs.LeaseRecoverer); ok {
		return lr.RecoverLease(ctx, name)
	}
	return nil
}

type file struct {
	fs    *FS
	inner dfs.File
	name  string
}

func (w *file) Write(p []byte) (int, error) {
	r := w.fs.fire(OpWrite, w.name)
	if r == nil {
		return w.inner.Write(p)
	}
	if r.Action == ActionShort {
		n, err := w.inner.Write(p[:len(p)/2])
		if err != nil {
			return n, err
		}
		return n, injectedErr(r, w.name)
	}
	return 0, injectedErr(r, w.name)
}

func (w *file) Sync(ctx context.Context) error {
	if err := w.fs.check(OpSync, w.name); err != nil {
		return err
	}
	return w.inner.Sync(ctx)
}

// Close counts as a sync: an injected sync fault fails the Close (the inner
// file is still closed, so that no descriptor leaks).
func (w *file) Close() error {
	serr := w.fs.check(OpSync, w.name)
	cerr := w.inner.Close()
	if serr != nil {
		return serr
	}
	return cerr
}

func (w *file) Size() int64 { return w.inner.Size() }

type readFile struct {
	fs    *FS
	inner dfs.ReadFile
	name  string
}

func (r *readFile) ReadAt(p []byte, off int64) (int, error) {
	rule := r.fs.fire(OpRead, r.name)
	if rule == nil {
		return r.inner.ReadAt(p, off)
	}
	switch rule.Action {
	case ActionShort:
		n, err := r.inner.ReadAt(p[:len(p)/2], off)
		if err != nil {
			return n, err
		}
		return n, injectedErr(rule, r.name)
	case ActionFlip:
		n, err := r.inner.ReadAt(p, off)
		if rule.Offset >= off && rule.Offset < off+int64(n) {
			p[rule.Offset-off] ^= 0xFF
		}
		return n, err
	}
	return 0, injectedErr(rule, r.name)
}

func (r *readFile) Close() error { return r.inner.Close() }
func (r *readFile) Size() int64  { return r.inner.Size() }
