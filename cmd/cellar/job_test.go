package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"cellar/client"
	"cellar/dfs/dfscluster"
	"cellar/internal/testcluster"
)

// TestJobCommands runs rowcount, copytable, export, import and importtsv
// through the CLI against an in-process cluster and checks their output.
func TestJobCommands(t *testing.T) {
	c := testcluster.Start(t, testcluster.Options{MemFS: true, Servers: 2, Masters: 1})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cl, err := client.Dial(ctx, c.LockAddrs())
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	fams := map[string]client.GCPolicy{"f": client.NoGcPolicy(), "g": client.NoGcPolicy()}
	for _, name := range []string{"src", "dst", "back"} {
		if err := cl.Admin().CreateTable(ctx, name, fams, "k050"); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.WaitAllAssigned(ctx); err != nil {
		t.Fatal(err)
	}
	var rows []string
	var muts []*client.Mutation
	for i := range 100 {
		m := client.NewMutation()
		m.Set("f", "a", 5, []byte{byte(i), 0, 0xff})
		m.Set("g", "b\x00", 6, []byte("x"))
		rows, muts = append(rows, fmt.Sprintf("k%03d", i)), append(muts, m)
	}
	if errs, err := cl.Open("src").ApplyBulk(ctx, rows, muts); err != nil || errs != nil {
		t.Fatal(err, errs)
	}
	cluster := "--cluster=" + strings.Join(c.LockAddrs(), ",")
	tmp := "--tmp=" + t.TempDir()
	mustRun := func(args ...string) string {
		t.Helper()
		out, err := run(t, append([]string{"job", cluster, tmp}, args...)...)
		if err != nil {
			t.Fatalf("cellar job %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		if !strings.Contains(out, "summary\trows ") || !strings.Contains(out, "rows/s") {
			t.Fatalf("cellar job %s: no summary in %q", strings.Join(args, " "), out)
		}
		return out
	}
	if out := mustRun("rowcount", "src", "--cells"); !strings.Contains(out, "rows\t100\n") || !strings.Contains(out, "cells\tf\t100\n") || !strings.Contains(out, "cells\tg\t100\n") {
		t.Fatalf("rowcount = %q", out)
	}
	if out := mustRun("rowcount", "src", "--start=k010", "--end=k020"); !strings.Contains(out, "rows\t10\n") {
		t.Fatalf("rowcount of a range = %q", out)
	}
	mustRun("copytable", "src", "dst", "--start=k090")
	if out := mustRun("rowcount", "dst"); !strings.Contains(out, "rows\t10\n") {
		t.Fatalf("rowcount after copytable = %q", out)
	}
	dir := filepath.Join(t.TempDir(), "exp")
	mustRun("export", "src", dir)
	mustRun("import", "back", dir)
	if out := mustRun("rowcount", "back", "--cells"); !strings.Contains(out, "rows\t100\n") || !strings.Contains(out, "cells\tg\t100\n") {
		t.Fatalf("rowcount after import = %q", out)
	}
	row, err := cl.Open("back").ReadRow(ctx, "k007")
	if err != nil || len(row["f"]) != 1 || string(row["f"][0].Value) != "\x07\x00\xff" || row["f"][0].Timestamp != 5 || row["g"][0].Column != "g:b\x00" {
		t.Fatalf("imported row k007 = %v, %v", row, err)
	}
	// Exporting into the same directory again is refused.
	if out, err := run(t, "job", cluster, tmp, "export", "src", dir); err == nil {
		t.Fatalf("export into a non-empty directory succeeded: %s", out)
	}

	// The same round trip through the replicated dfs (dfs:PATH).
	dc, err := dfscluster.Start(ctx, &dfscluster.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer dc.Close()
	if err := cl.Admin().CreateTable(ctx, "back2", fams); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitAllAssigned(ctx); err != nil {
		t.Fatal(err)
	}
	masters := "--dfs-masters=" + strings.Join(dc.MasterAddrs(), ",")
	mustRun("export", masters, "src", "dfs:/exports/src")
	mustRun("import", masters, "back2", "dfs:/exports/src")
	if out := mustRun("rowcount", "back2", "--cells"); !strings.Contains(out, "rows\t100\n") || !strings.Contains(out, "cells\tf\t100\n") {
		t.Fatalf("rowcount after the dfs round trip = %q", out)
	}

	tsv := filepath.Join(t.TempDir(), "in.tsv")
	os.WriteFile(tsv, []byte("t1\tone\nbad line\nt2\ttwo\n\tx\n"), 0o644)
	out := mustRun("importtsv", "dst", tsv, "--columns=ROW,f:name")
	if !strings.Contains(out, "bad lines\t2\n") || !strings.Contains(out, "byte offset 7") || !strings.Contains(out, "summary\trows 2,") {
		t.Fatalf("importtsv = %q", out)
	}
	if out, err := run(t, "job", cluster, tmp, "importtsv", "dst", tsv, "--columns=ROW,nosuch:q"); err == nil || !strings.Contains(err.Error(), "nosuch") {
		t.Fatalf("importtsv into a missing family: %v %s", err, out)
	}
	if _, err := run(t, "job", cluster, tmp, "rowcount", "nosuch"); err == nil || !strings.Contains(err.Error(), "not found") {
		t.Fatalf("rowcount of a missing table: %v", err)
	}
}
