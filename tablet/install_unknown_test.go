package tablet

import (
	"context"
	"errors"
	"fmt"
	"path"
	"strings"
	"sync/atomic"
	"testing"

	"cellar/dfs"
	"cellar/dfs/memfs"
)

// renameThenFail renames, then reports failure, while armed: what a remote
// file system does when the reply to an applied rename is lost or its
// caller's ctx ends.
type renameThenFail struct {
	dfs.FS
	armed atomic.Bool
}

var errLostReply = errors.New("test: reply lost")

func (r *renameThenFail) Rename(ctx context.Context, oldname, newname string) error {
	if err := r.FS.Rename(ctx, oldname, newname); err != nil {
		return err
	}
	if r.armed.Load() && strings.HasPrefix(path.Base(newname), manifestPrefix) {
		return errLostReply
	}
	return nil
}

// TestManifestRenameOutcomeUnknown checks that a flush whose manifest
// rename happened but reported failure does not delete the tables the
// installed manifest lists: the tablet reopens with every row.
func TestManifestRenameOutcomeUnknown(t *testing.T) {
	ctx := context.Background()
	fs := &renameThenFail{FS: memfs.New()}
	opts := &Options{FS: fs, Dir: "t", Families: []FamilyOptions{{Name: "a"}}, Logger: discardLogger()}
	tab, err := Open(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 50; i++ {
		row := []byte(fmt.Sprintf("r%02d", i))
		if err := tab.Apply(ctx, row, []Mutation{SetCell("a", nil, 1, row)}, &WriteOptions{Durability: SkipLog}); err != nil {
			t.Fatal(err)
		}
	}
	fs.armed.Store(true)
	if err := tab.Flush(ctx); !errors.Is(err, errLostReply) {
		t.Fatalf("Flush = %v, want the lost reply", err)
	}
	tab.Close()
	fs.armed.Store(false)
	tab, err = Open(ctx, opts)
	if err != nil {
		t.Fatalf("reopen after an unknown manifest install: %v", err)
	}
	defer tab.Close()
	n := 0
	if err := tab.Scan(ctx, nil, func(*Row) bool { n++; return true }); err != nil || n != 50 {
		t.Fatalf("Scan after reopen = %d rows, %v; want 50 (rows were SkipLog: only the flushed tables hold them)", n, err)
	}
}
