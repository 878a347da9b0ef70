package memfs

import (
	"context"
	"testing"

	"cellar/dfs"
	"cellar/dfs/dfstest"
)

func TestConformance(t *testing.T) {
	dfstest.RunConformance(t, func(t *testing.T) dfs.FS { return New() })
}

func TestCrashCloneKeepsOnlySynced(t *testing.T) {
	ctx := context.Background()
	m := New()
	f, _ := m.Create(ctx, "log")
	f.Write([]byte("durable"))
	f.Sync(ctx)
	f.Write([]byte("-lost"))
	c := m.CrashClone()
	fi, err := c.Stat(ctx, "log")
	if err != nil || fi.Size != int64(len("durable")) {
		t.Fatalf("after crash Stat(log) = %+v, %v; want %d bytes", fi, err, len("durable"))
	}
}
