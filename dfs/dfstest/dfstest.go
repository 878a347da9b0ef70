// Package dfstest is the conformance suite every dfs.FS implementation runs:
// dfs/local, dfs/memfs and the replicated client each call RunConformance
// from their tests, so that the storage engine can rely on one contract.
package dfstest

import (
	"bytes"
	"context"
	"errors"
	"io"
	"testing"

	"cellar/dfs"
)

// RunConformance checks the dfs.FS contract against file systems made by
// newFS, one fresh, empty FS per subtest.
func RunConformance(t *testing.T, newFS func(t *testing.T) dfs.FS) {
	ctx := context.Background()
	t.Run("CreateWriteSyncRead", func(t *testing.T) {
		fs := newFS(t)
		f, err := fs.Create(ctx, "a/b/c.log")
		if err != nil {
			t.Fatalf("Create: %v", err)
		}
		want := bytes.Repeat([]byte("0123456789"), 10000)
		for off := 0; off < len(want); off += 777 {
			end := min(off+777, len(want))
			if _, err := f.Write(want[off:end]); err != nil {
				t.Fatalf("Write: %v", err)
			}
		}
		if err := f.Sync(ctx); err != nil {
			t.Fatalf("Sync: %v", err)
		}
		if f.Size() != int64(len(want)) {
			t.Fatalf("Size() = %d, want %d", f.Size(), len(want))
		}
		r, err := fs.Open(ctx, "a/b/c.log")
		if err != nil {
			t.Fatalf("Open of a synced file being written: %v", err)
		}
		if r.Size() != int64(len(want)) {
			t.Fatalf("reader Size() = %d, want %d", r.Size(), len(want))
		}
		r.Close()
		if err := f.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
		if _, err := f.Write([]byte("x")); !errors.Is(err, dfs.ErrClosed) {
			t.Fatalf("Write after Close = %v, want ErrClosed", err)
		}
		r, err = fs.Open(ctx, "a/b/c.log")
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		defer r.Close()
		got := make([]byte, len(want))
		if n, err := r.ReadAt(got, 0); n != len(want) || (err != nil && err != io.EOF) {
			t.Fatalf("ReadAt = %d, %v", n, err)
		}
		if !bytes.Equal(got, want) {
			t.Fatal("ReadAt returned other bytes than were written")
		}
		part := make([]byte, 20)
		if n, err := r.ReadAt(part, int64(len(want)-10)); n != 10 || err != io.EOF {
			t.Fatalf("short ReadAt at the end = %d, %v; want 10, io.EOF", n, err)
		}
		if _, err := r.ReadAt(part, int64(len(want)+5)); err != io.EOF {
			t.Fatalf("ReadAt past the end = %v; want io.EOF", err)
		}
	})
	t.Run("CreateExisting", func(t *testing.T) {
		fs := newFS(t)
		f, err := fs.Create(ctx, "x")
		if err != nil {
			t.Fatal(err)
		}
		f.Close()
		if _, err := fs.Create(ctx, "x"); !errors.Is(err, dfs.ErrExist) {
			t.Fatalf("second Create = %v, want ErrExist", err)
		}
	})
	t.Run("NotFound", func(t *testing.T) {
		fs := newFS(t)
		if _, err := fs.Open(ctx, "nope"); !errors.Is(err, dfs.ErrNotFound) {
			t.Fatalf("Open = %v, want ErrNotFound", err)
		}
		if _, err := fs.Stat(ctx, "nope"); !errors.Is(err, dfs.ErrNotFound) {
			t.Fatalf("Stat = %v, want ErrNotFound", err)
		}
		if err := fs.Remove(ctx, "nope"); !errors.Is(err, dfs.ErrNotFound) {
			t.Fatalf("Remove = %v, want ErrNotFound", err)
		}
		if err := fs.Rename(ctx, "nope", "other"); !errors.Is(err, dfs.ErrNotFound) {
			t.Fatalf("Rename = %v, want ErrNotFound", err)
		}
		if l, err := fs.List(ctx, "nodir"); err != nil || len(l) != 0 {
			t.Fatalf("List(missing) = %v, %v; want empty", l, err)
		}
	})
	t.Run("InvalidPath", func(t *testing.T) {
		fs := newFS(t)
		for _, p := range []string{"", "/abs", "a/../b", "a//b", "a/", "./a"} {
			if _, err := fs.Create(ctx, p); !errors.Is(err, dfs.ErrInvalidPath) {
				t.Errorf("Create(%q) = %v, want ErrInvalidPath", p, err)
			}
		}
	})
	t.Run("ListRenameRemove", func(t *testing.T) {
		fs := newFS(t)
		for _, n := range []string{"d/2", "d/1", "d/sub/3", "e"} {
			f, err := fs.Create(ctx, n)
			if err != nil {
				t.Fatal(err)
			}
			f.Write([]byte(n))
			if err := f.Close(); err != nil {
				t.Fatal(err)
			}
		}
		l, err := fs.List(ctx, "d")
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, fi := range l {
			names = append(names, fi.Name)
		}
		if got := join(names); got != "1,2,sub" {
			t.Fatalf("List(d) = %s, want 1,2,sub", got)
		}
		if err := fs.Rename(ctx, "d/1", "d/2"); err != nil {
			t.Fatalf("Rename over an existing file: %v", err)
		}
		if _, err := fs.Stat(ctx, "d/1"); !errors.Is(err, dfs.ErrNotFound) {
			t.Fatalf("Stat(old name) after Rename = %v", err)
		}
		r, err := fs.Open(ctx, "d/2")
		if err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 3)
		n, _ := r.ReadAt(buf, 0)
		r.Close()
		if string(buf[:n]) != "d/1" {
			t.Fatalf("renamed file holds %q, want d/1", buf[:n])
		}
		if err := fs.Remove(ctx, "d/2"); err != nil {
			t.Fatal(err)
		}
		if fi, err := fs.Stat(ctx, "d/sub/3"); err != nil || fi.Size != 7 {
			t.Fatalf("Stat(d/sub/3) = %+v, %v", fi, err)
		}
	})
}

func join(s []string) string {
	var b bytes.Buffer
	for i, x := range s {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(x)
	}
	return b.String()
}
