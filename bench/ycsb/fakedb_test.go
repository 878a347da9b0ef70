package ycsb

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
)

// fakeSystem is an in-memory System: a map of records and a sorted key list
// under one mutex. failOp, when set, makes that operation fail.
type fakeSystem struct {
	name   string
	failOp Op
	fail   bool
	db     *fakeDB
}

func newFakeSystem(name string) *fakeSystem { return &fakeSystem{name: name} }

var (
	_ System = (*fakeSystem)(nil)
	_ DB     = (*fakeDB)(nil)
)

func (s *fakeSystem) Name() string { return s.name }
func (s *fakeSystem) Open(context.Context) (DB, error) {
	s.db = &fakeDB{name: s.name, rows: map[string]map[string][]byte{}, failOp: s.failOp, fail: s.fail}
	return s.db, nil
}
func (s *fakeSystem) Close() error { return nil }

type fakeDB struct {
	name   string
	failOp Op
	fail   bool
	mu     struct {
		sync.Mutex
		ops    [numOps]int
		closed bool
	}
	rows map[string]map[string][]byte // guarded by mu
	keys []string                     // sorted; guarded by mu
}

var errInjected = errors.New("injected failure")

func (d *fakeDB) Name() string { return d.name }

func (d *fakeDB) check(op Op) error {
	d.mu.ops[op]++
	if d.mu.closed {
		return errors.New("closed")
	}
	if d.fail && op == d.failOp {
		return errInjected
	}
	return nil
}

func (d *fakeDB) Read(_ context.Context, key string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.check(OpRead); err != nil {
		return err
	}
	r, ok := d.rows[key]
	if !ok {
		return fmt.Errorf("%s: %w", key, ErrNotFound)
	}
	if len(r) == 0 {
		return fmt.Errorf("%s: empty record", key)
	}
	return nil
}

func (d *fakeDB) write(key string, fields map[string][]byte, mustExist bool) error {
	r, ok := d.rows[key]
	if !ok {
		if mustExist {
			return fmt.Errorf("%s: %w", key, ErrNotFound)
		}
		r = map[string][]byte{}
		d.rows[key] = r
		i, _ := slices.BinarySearch(d.keys, key)
		d.keys = slices.Insert(d.keys, i, key)
	}
	for f, v := range fields {
		r[f] = slices.Clone(v)
	}
	return nil
}

func (d *fakeDB) Update(_ context.Context, key string, fields map[string][]byte) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.check(OpUpdate); err != nil {
		return err
	}
	if len(fields) != 1 {
		return fmt.Errorf("update of %d fields, want 1", len(fields))
	}
	return d.write(key, fields, true)
}

func (d *fakeDB) Insert(_ context.Context, key string, fields map[string][]byte) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.check(OpInsert); err != nil {
		return err
	}
	if _, ok := d.rows[key]; ok {
		return fmt.Errorf("%s: already exists", key)
	}
	return d.write(key, fields, false)
}

func (d *fakeDB) Scan(_ context.Context, start string, count int) (int, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.check(OpScan); err != nil {
		return 0, err
	}
	i, _ := slices.BinarySearch(d.keys, start)
	return min(count, len(d.keys)-i), nil
}

func (d *fakeDB) ReadModifyWrite(_ context.Context, key string, fields map[string][]byte) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.check(OpReadModifyWrite); err != nil {
		return err
	}
	return d.write(key, fields, true)
}

func (d *fakeDB) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.mu.closed = true
	return nil
}

// snapshot returns the per-op call counts, the number of records and
// whether every record has all fields of the right length.
func (d *fakeDB) snapshot(fieldCount, fieldLength int) (ops [numOps]int, records int, complete bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	complete = true
	for _, r := range d.rows {
		if len(r) != fieldCount {
			complete = false
		}
		for _, k := range slices.Sorted(maps.Keys(r)) {
			if len(r[k]) != fieldLength {
				complete = false
			}
		}
	}
	return d.mu.ops, len(d.rows), complete
}
