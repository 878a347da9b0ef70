package testcluster_test

import (
	"context"
	"fmt"
	"regexp"
	"testing"
	"time"

	"cellar/client"
	"cellar/internal/testcluster"
)

func dial(t *testing.T, c *testcluster.Cluster) *client.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cl, err := client.Dial(ctx, c.LockAddrs())
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { cl.Close() })
	return cl
}

func TestSmoke(t *testing.T) {
	c := testcluster.Start(t, testcluster.Options{})
	cl := dial(t, c)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := cl.Admin().CreateTable(ctx, "t", map[string]client.GCPolicy{"f": client.MaxVersionsPolicy(3)}, "m"); err != nil {
		t.Fatalf("create: %v", err)
	}
	tbl := cl.Open("t")
	for i := range 50 {
		m := client.NewMutation()
		m.Set("f", "q", client.Timestamp(1000+i), []byte(fmt.Sprint("v", i)))
		if err := tbl.Apply(ctx, fmt.Sprintf("row%02d", i%26+'a'-'a'), m); err != nil {
			t.Fatalf("apply %d: %v", i, err)
		}
	}
	r, err := tbl.ReadRow(ctx, "row00")
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	if len(r["f"]) != 2 {
		t.Fatalf("row00 = %v, want 2 versions", r)
	}
	n := 0
	if err := tbl.ReadRows(ctx, client.InfiniteRange(""), func(client.Row) bool { n++; return true }); err != nil {
		t.Fatalf("scan: %v", err)
	}
	if n != 26 {
		t.Fatalf("scan saw %d rows, want 26", n)
	}
	info, err := cl.Admin().TableInfo(ctx, "t")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("table info: %+v", info)
	// The master reports the dfs's health.
	st, err := cl.Admin().ClusterStatus(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`^(HEALTHY|UNDER-REPLICATED) \(dfs leader \S+; \d+ files`).MatchString(st.FileSystem) {
		t.Errorf("cluster status file system %q, want the dfs summary", st.FileSystem)
	}
}
