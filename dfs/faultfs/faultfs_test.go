package faultfs_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"sync"
	"testing"

	"cellar/dfs"
	"cellar/dfs/dfstest"
	"cellar/dfs/faultfs"
	"cellar/dfs/memfs"
)

func TestConformanceWithoutRules(t *testing.T) {
	dfstest.RunConformance(t, func(t *testing.T) dfs.FS { return faultfs.New(memfs.New()) })
}

func create(t *testing.T, fs dfs.FS, name string) dfs.File {
	t.Helper()
	f, err := fs.Create(context.Background(), name)
	if err != nil {
		t.Fatalf("Create(%s): %v", name, err)
	}
	return f
}

func TestNthWriteAndSync(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name     string
		rule     faultfs.Rule
		file     string
		wantFail []bool // per operation, in order
	}{
		{"second write", faultfs.Rule{Op: faultfs.OpWrite, Nth: 2}, "a", []bool{false, true, false, false}},
		{"second write sticky", faultfs.Rule{Op: faultfs.OpWrite, Nth: 2, Sticky: true}, "a", []bool{false, true, true, true}},
		{"every write", faultfs.Rule{Op: faultfs.OpWrite}, "a", []bool{true, true}},
		{"pattern matches", faultfs.Rule{Op: faultfs.OpWrite, Nth: 1, Pattern: "log/*.log"}, "log/1.log", []bool{true, false}},
		{"pattern does not match", faultfs.Rule{Op: faultfs.OpWrite, Nth: 1, Pattern: "log/*.log"}, "sst/1.sst", []bool{false, false}},
		{"first sync", faultfs.Rule{Op: faultfs.OpSync, Nth: 1}, "a", []bool{true, false}},
		{"third sync sticky", faultfs.Rule{Op: faultfs.OpSync, Nth: 3, Sticky: true}, "a", []bool{false, false, true, true}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fs := faultfs.New(memfs.New(), tc.rule)
			f := create(t, fs, tc.file)
			for i, want := range tc.wantFail {
				var err error
				if tc.rule.Op == faultfs.OpWrite {
					_, err = f.Write([]byte("x"))
				} else {
					err = f.Sync(ctx)
				}
				if got := err != nil; got != want {
					t.Fatalf("operation %d: err = %v, want failure %v", i+1, err, want)
				}
				if err != nil && !errors.Is(err, faultfs.ErrInjected) {
					t.Fatalf("operation %d: err = %v, want ErrInjected", i+1, err)
				}
			}
		})
	}
}

func TestNoSpaceAndTornWrite(t *testing.T) {
	inner := memfs.New()
	fs := faultfs.New(inner, faultfs.Rule{Op: faultfs.OpWrite, Nth: 1, Action: faultfs.ActionNoSpace})
	f := create(t, fs, "a")
	if n, err := f.Write([]byte("hello")); n != 0 || !errors.Is(err, dfs.ErrNoSpace) || !errors.Is(err, faultfs.ErrInjected) {
		t.Fatalf("Write = %d, %v; want 0, ErrNoSpace and ErrInjected", n, err)
	}
	fs.AddRule(faultfs.Rule{Op: faultfs.OpWrite, Nth: 1, Action: faultfs.ActionShort})
	if n, err := f.Write([]byte("abcdef")); n != 3 || !errors.Is(err, faultfs.ErrInjected) {
		t.Fatalf("torn Write = %d, %v; want 3, ErrInjected", n, err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	got := readAll(t, inner, "a")
	if string(got) != "abc" {
		t.Fatalf("file holds %q, want %q", got, "abc")
	}
	if n := fs.Injected(); n != 2 {
		t.Fatalf("Injected() = %d, want 2", n)
	}
}

func readAll(t *testing.T, fs dfs.FS, name string) []byte {
	t.Helper()
	r, err := fs.Open(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	b := make([]byte, r.Size())
	if _, err := r.ReadAt(b, 0); err != nil && err != io.EOF {
		t.Fatal(err)
	}
	return b
}

func TestReadFaults(t *testing.T) {
	ctx := context.Background()
	inner := memfs.New()
	w := create(t, inner, "f")
	want := []byte("0123456789")
	w.Write(want)
	w.Close()
	fs := faultfs.New(inner)
	r, err := fs.Open(ctx, "f")
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	buf := make([]byte, 10)

	// Rules added while the file is open apply to it.
	fs.AddRule(faultfs.Rule{Op: faultfs.OpRead, Nth: 1, Action: faultfs.ActionShort})
	if n, err := r.ReadAt(buf, 0); n != 5 || !errors.Is(err, faultfs.ErrInjected) {
		t.Fatalf("short ReadAt = %d, %v; want 5, ErrInjected", n, err)
	}
	fs.ClearRules()
	fs.AddRule(faultfs.Rule{Op: faultfs.OpRead, Action: faultfs.ActionError})
	if n, err := r.ReadAt(buf, 0); n != 0 || !errors.Is(err, faultfs.ErrInjected) {
		t.Fatalf("failing ReadAt = %d, %v; want 0, ErrInjected", n, err)
	}
	fs.ClearRules()
	fs.AddRule(faultfs.Rule{Op: faultfs.OpRead, Action: faultfs.ActionFlip, Offset: 7})
	if n, err := r.ReadAt(buf, 0); n != 10 || err != nil {
		t.Fatalf("ReadAt = %d, %v", n, err)
	}
	flipped := bytes.Clone(want)
	flipped[7] ^= 0xFF
	if !bytes.Equal(buf, flipped) {
		t.Fatalf("ReadAt with flip = %q, want %q", buf, flipped)
	}
	small := make([]byte, 3)
	if _, err := r.ReadAt(small, 6); err != nil || small[1] != want[7]^0xFF || small[0] != want[6] {
		t.Fatalf("ReadAt(3 bytes at 6) = %q, %v; want the byte at offset 7 flipped", small, err)
	}
	if _, err := r.ReadAt(small, 0); err != nil || !bytes.Equal(small, want[:3]) {
		t.Fatalf("ReadAt not covering the offset = %q, %v; want it unchanged", small, err)
	}
	fs.ClearRules()
	if n, err := r.ReadAt(buf, 0); n != 10 || err != nil || !bytes.Equal(buf, want) {
		t.Fatalf("ReadAt after ClearRules = %q, %v", buf[:n], err)
	}
}

func TestNamespaceFaults(t *testing.T) {
	ctx := context.Background()
	fs := faultfs.New(memfs.New(),
		faultfs.Rule{Op: faultfs.OpCreate, Pattern: "bad/*"},
		faultfs.Rule{Op: faultfs.OpRemove, Nth: 1},
		faultfs.Rule{Op: faultfs.OpOpen, Nth: 1},
		faultfs.Rule{Op: faultfs.OpRename, Nth: 1})
	if _, err := fs.Create(ctx, "bad/x"); !errors.Is(err, faultfs.ErrInjected) {
		t.Fatalf("Create(bad/x) = %v, want ErrInjected", err)
	}
	f := create(t, fs, "good/x")
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	for i, op := range []func() error{
		func() error { _, err := fs.Open(ctx, "good/x"); return err },
		func() error { return fs.Rename(ctx, "good/x", "good/y") },
		func() error { return fs.Remove(ctx, "good/y") },
	} {
		if err := op(); !errors.Is(err, faultfs.ErrInjected) {
			t.Fatalf("operation %d: first call = %v, want ErrInjected", i, err)
		}
		if err := op(); err != nil {
			t.Fatalf("operation %d: second call = %v, want success", i, err)
		}
	}
}

// TestConcurrentRuleChanges runs writers and readers while rules change
// under them (meaningful under -race).
func TestConcurrentRuleChanges(t *testing.T) {
	ctx := context.Background()
	fs := faultfs.New(memfs.New())
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			f, err := fs.Create(ctx, dfs.Join("c", string(rune('a'+g))))
			if err != nil {
				t.Error(err)
				return
			}
			for range 200 {
				if _, err := f.Write([]byte("data")); err != nil && !errors.Is(err, faultfs.ErrInjected) {
					t.Errorf("Write: %v", err)
				}
				if err := f.Sync(ctx); err != nil && !errors.Is(err, faultfs.ErrInjected) {
					t.Errorf("Sync: %v", err)
				}
			}
			f.Close()
		}()
	}
	for i := range 100 {
		fs.AddRule(faultfs.Rule{Op: faultfs.OpWrite, Nth: i%3 + 1})
		if i%10 == 0 {
			fs.ClearRules()
		}
	}
	wg.Wait()
}
