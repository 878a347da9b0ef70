package local

import (
	"testing"

	"cellar/dfs"
	"cellar/dfs/dfstest"
)

func TestConformance(t *testing.T) {
	dfstest.RunConformance(t, func(t *testing.T) dfs.FS {
		fs, err := Open(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		return fs
	})
}
