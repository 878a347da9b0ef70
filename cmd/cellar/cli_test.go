package main

import (
	"bytes"
	"context"
	"errors"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"cellar/client"
	"cellar/dfs/dfscluster"
	"cellar/internal/testcluster"
)

// The in-process tests of the admin and data commands (docs/cli.md) share
// one small cluster (one master, one tablet server, files in memory); each
// test uses its own tables.

var (
	sharedOnce    sync.Once
	sharedCluster *testcluster.Cluster
	sharedStop    func()
	sharedErr     error
)

// cluster returns the shared cluster's lock-service addresses.
func cluster(t *testing.T) string {
	t.Helper()
	sharedOnce.Do(func() {
		st := &testcluster.Standalone{}
		sharedCluster, sharedErr = testcluster.StartStandalone(st, testcluster.Options{Servers: 1, Masters: 1, MemFS: true,
			MemtableSize: 32 << 20}) // room for a mutation of a 10 MiB value
		sharedStop = st.Close
		if sharedErr == nil {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			sharedErr = sharedCluster.WaitAllAssigned(ctx)
		}
	})
	if sharedErr != nil {
		t.Fatalf("start cluster: %v", sharedErr)
	}
	return strings.Join(sharedCluster.LockAddrs(), ",")
}

// stopSharedCluster runs after every test (TestMain).
func stopSharedCluster() {
	if sharedStop != nil {
		sharedStop()
	}
}

// cli runs one cellar command in process against the shared cluster and
// returns its standard output, standard error and error.
func cli(t *testing.T, stdin string, args ...string) (string, string, error) {
	t.Helper()
	root := newRootCmd()
	var out, errb bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&errb)
	root.SetIn(strings.NewReader(stdin))
	root.SetArgs(append([]string{"--cluster", cluster(t)}, args...))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	err := root.ExecuteContext(ctx)
	return out.String(), errb.String(), err
}

// ok runs a command that must succeed and returns its output.
func ok(t *testing.T, args ...string) string {
	t.Helper()
	out, _, err := cli(t, "", args...)
	if err != nil {
		t.Fatalf("cellar %s: %v", strings.Join(args, " "), err)
	}
	return out
}

func TestCommandsInProcess(t *testing.T) {
	ok(t, "create", "inproc", "contents:maxversions=2", "anchor:maxage=7d:maxversions=5", "--splits", "m")
	if out := ok(t, "ls"); !strings.Contains(out, "inproc\n") {
		t.Fatalf("ls = %q, want inproc listed", out)
	}
	for i, v := range []string{"a", "b", "c"} {
		ok(t, "put", "inproc", "row1", "contents:html", v, "--ts", string(rune('1'+i)))
	}
	ok(t, "put", "inproc", "zrow", "contents:x y", "tab\there", "--ts", "7")
	// maxversions=2 keeps the two latest of a, b, c.
	if got, want := ok(t, "get", "inproc", "row1"), "row1 contents:html @3 c\nrow1 contents:html @2 b\n"; got != want {
		t.Errorf("get = %q, want %q", got, want)
	}
	if got, want := ok(t, "get", "inproc", "row1", "--versions", "1"), "row1 contents:html @3 c\n"; got != want {
		t.Errorf("get --versions 1 = %q, want %q", got, want)
	}
	if got, want := ok(t, "scan", "inproc", "--start", "s"), `zrow contents:x\x20y @7 tab\there`+"\n"; got != want {
		t.Errorf("scan --start s = %q, want %q", got, want)
	}
	if got, want := ok(t, "get", "inproc", "zrow", "-o", "json"),
		`{"row":"enJvdw==","family":"contents","qualifier":"eCB5","timestamp":7,"value":"dGFiCWhlcmU="}`+"\n"; got != want {
		t.Errorf("get -o json = %q, want %q", got, want)
	}
	if got := ok(t, "count", "inproc"); got != "2\n" {
		t.Errorf("count = %q, want 2", got)
	}
	if got := ok(t, "incr", "inproc", "row1", "anchor:n", "5"); got != "5\n" {
		t.Errorf("incr = %q, want 5", got)
	}
	if got := ok(t, "incr", "inproc", "row1", "anchor:n", "-7"); got != "-2\n" {
		t.Errorf("incr = %q, want -2", got)
	}
	ok(t, "delete", "inproc", "row1", "anchor")
	if got, want := ok(t, "get", "inproc", "row1", "--columns", "anchor,contents:html", "--versions", "1"), "row1 contents:html @3 c\n"; got != want {
		t.Errorf("get after delete = %q, want %q", got, want)
	}
	ok(t, "delete", "inproc", "zrow")
	if got := ok(t, "count", "inproc"); got != "1\n" {
		t.Errorf("count after delete = %q, want 1", got)
	}
	desc := ok(t, "describe", "inproc")
	for _, want := range []string{`(?m)^table inproc \(id \d+\)$`, `(?m)^contents +maxversions=2$`, `(?m)^anchor +maxage=168h \|\| maxversions=5$`,
		`(?m)^\d+ +\(start\) +m +127\.0\.0\.1:\d+$`, `(?m)^\d+ +m +\(end\) +127\.0\.0\.1:\d+$`} {
		if !regexp.MustCompile(want).MatchString(desc) {
			t.Errorf("describe does not match %s:\n%s", want, desc)
		}
	}
	ok(t, "family", "add", "inproc", "stats")
	ok(t, "family", "set", "inproc", "stats:maxversions=1")
	if desc := ok(t, "describe", "inproc"); !strings.Contains(desc, "stats     maxversions=1") {
		t.Errorf("describe after family set:\n%s", desc)
	}
	ok(t, "family", "delete", "inproc", "stats")
	ok(t, "flush", "inproc")
	ok(t, "compact", "inproc", "--major")
	ok(t, "split", "inproc", "row2")
	if desc := ok(t, "describe", "inproc"); !strings.Contains(desc, " row2 ") {
		t.Errorf("describe after split lacks row2:\n%s", desc)
	}
	st := ok(t, "status")
	for _, want := range []string{"master: 127.0.0.1:", "lock service leader: 127.0.0.1:", "lock service members: ", "TABLET SERVER", "MEMTABLES", "HELD BACK", "file system: not replicated ("} {
		if !strings.Contains(st, want) {
			t.Errorf("status lacks %q:\n%s", want, st)
		}
	}
	ok(t, "drop", "inproc")
	if out := ok(t, "ls"); strings.Contains(out, "inproc\n") {
		t.Fatalf("ls after drop = %q", out)
	}
}

// TestBadInputInProcess checks the sentinel behind each bad input, and that
// nothing was written.
func TestBadInputInProcess(t *testing.T) {
	ok(t, "create", "badin", "f")
	ok(t, "put", "badin", "r", "f:q", "v", "--ts", "1")
	for _, tc := range []struct {
		args []string
		want error
	}{
		{[]string{"put", "badin", "r", "f", "v"}, errUsage},
		{[]string{"put", "badin", "r", "bad/fam:q", "v"}, errUsage},
		{[]string{"put", "badin", "r", "f:q"}, errUsage},
		{[]string{"put", "badin", "r", "f:q", "v", "--ts", "-5"}, errUsage},
		{[]string{"put", "badin", "r", "nofam:q", "v"}, client.ErrUnknownFamily},
		{[]string{"put", "nosuch", "r", "f:q", "v"}, client.ErrTableNotFound},
		{[]string{"put", "badin", strings.Repeat("r", 70000), "f:q", "v"}, client.ErrLimit},
		{[]string{"put", "badin", "r", "f:" + strings.Repeat("q", 17000), "v"}, errUsage},
		{[]string{"get", "badin", "r", "--columns", "nofam"}, client.ErrUnknownFamily},
		{[]string{"get", "badin", "r", "--versions", "-1"}, errUsage},
		{[]string{"scan", "badin", "--prefix", "a", "--start", "b"}, errUsage},
		{[]string{"scan", "badin", "--limit", "-1"}, errUsage},
		{[]string{"scan", "badin", "-o", "yaml"}, errUsage},
		{[]string{"delete", "badin", "r", "nofam"}, client.ErrUnknownFamily},
		{[]string{"incr", "badin", "r", "f:n", "x"}, errUsage},
		{[]string{"create", "badin2", "f:maxage=soon"}, errUsage},
		{[]string{"create", "badin2", "f:maxversions=0"}, errUsage},
		{[]string{"create", "badin2", "f:maxversions=2:maxversions=3"}, errUsage},
		{[]string{"create", "badin2", "f:ttl=3"}, errUsage},
		{[]string{"create", "badin2", "f", "f"}, errUsage},
		{[]string{"create", "badin"}, errUsage},
		{[]string{"create", "badin", "g"}, client.ErrTableExists},
		{[]string{"family", "add", "badin", "f"}, client.ErrFamilyExists},
		{[]string{"family", "delete", "badin", "f:maxversions=1"}, errUsage},
		{[]string{"describe", "nosuch"}, client.ErrTableNotFound},
		{[]string{"drop", "nosuch"}, client.ErrTableNotFound},
		{[]string{"count", "nosuch"}, client.ErrTableNotFound},
	} {
		_, _, err := cli(t, "", tc.args...)
		if !errors.Is(err, tc.want) {
			t.Errorf("cellar %.80s = %.200v, want %v", strings.Join(tc.args, " "), err, tc.want)
		}
	}
	if got, want := ok(t, "scan", "badin"), "r f:q @1 v\n"; got != want {
		t.Errorf("after bad input scan = %q, want %q", got, want)
	}
	if out := ok(t, "ls"); strings.Contains(out, "badin2") {
		t.Errorf("a failed create left a table: %q", out)
	}
}

// TestPutValueFile writes a value with bytes no argument can carry.
func TestPutValueFile(t *testing.T) {
	ok(t, "create", "valfile", "f")
	val := "\x00\xff\n \\\"é"
	if _, _, err := cli(t, val, "put", "valfile", "r", "f:", "--value-file", "-", "--ts", "5"); err != nil {
		t.Fatal(err)
	}
	if got, want := ok(t, "get", "valfile", "r"), `r f: @5 \x00\xff\n\x20\\\"é`+"\n"; got != want {
		t.Errorf("get = %q, want %q", got, want)
	}
	// A value just under the 10 MiB limit goes through put, export and
	// import (it travels alone in its import batch).
	big := bytes.Repeat([]byte("0123456789abcdef"), (10<<20-16)/16)
	if _, _, err := cli(t, string(big), "put", "valfile", "big", "f:q", "--value-file", "-", "--ts", "6"); err != nil {
		t.Fatal(err)
	}
	exported, _, err := cli(t, "", "export", "valfile", "-")
	if err != nil {
		t.Fatal(err)
	}
	ok(t, "create", "valfile2", "f")
	if out, _, err := cli(t, exported, "import", "valfile2", "-"); err != nil || out != "imported 2 cells\n" {
		t.Fatalf("import: %q, %v", out, err)
	}
	out, _, err := cli(t, "", "get", "valfile2", "big", "-o", "json")
	if err != nil {
		t.Fatal(err)
	}
	c, err := parseCellLine([]byte(strings.TrimSuffix(out, "\n")))
	if err != nil || !bytes.Equal(c.Value, big) {
		t.Fatalf("the %d-byte value did not come back whole (%d bytes, %v)", len(big), len(c.Value), err)
	}
}

// TestProgressStaysOffStdout draws the progress bars (as on a terminal)
// on stderr and checks that stdout carries only each command's result.
func TestProgressStaysOffStdout(t *testing.T) {
	addr := cluster(t)
	ok(t, "create", "prog", "f")
	for _, r := range []string{"a", "b", "c"} {
		ok(t, "put", "prog", r, "f:q", "v", "--ts", "1")
	}
	dir := t.TempDir()
	run := func(args ...string) (string, string) {
		t.Helper()
		s := newSession()
		s.cluster = addr
		s.progress = true
		root := newRootCmd()
		root.ResetCommands()
		root.AddCommand(clusterCommands(s)...)
		var out, errb bytes.Buffer
		root.SetOut(&out)
		root.SetErr(&errb)
		root.SetArgs(args)
		if err := root.ExecuteContext(context.Background()); err != nil {
			t.Fatalf("%v: %v", args, err)
		}
		return out.String(), errb.String()
	}
	for _, tc := range []struct {
		args          []string
		stdout, label string
	}{
		{[]string{"count", "prog"}, "3\n", "counting rows of prog"},
		{[]string{"export", "prog", dir + "/x"}, "exported 3 cells of 3 rows to " + dir + "/x\n", "exporting prog"},
		{[]string{"import", "prog", dir + "/x"}, "imported 3 cells\n", "importing into prog"},
		{[]string{"compact", "prog", "--major"}, "", "major compaction of prog"},
	} {
		out, errOut := run(tc.args...)
		if out != tc.stdout {
			t.Errorf("%v with progress: stdout %q, want %q", tc.args, out, tc.stdout)
		}
		if !strings.Contains(errOut, tc.label) {
			t.Errorf("%v: no progress bar on stderr: %q", tc.args, errOut)
		}
	}
	// Exporting to standard output draws no bar over the cells.
	if out, errOut := run("export", "prog", "-"); strings.Count(out, "\n") != 3 || errOut != "" {
		t.Errorf("export -: stdout %q, stderr %q", out, errOut)
	}
}

// TestStatusWithDFS reports a replicated file system's health.
func TestStatusWithDFS(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	dc, err := dfscluster.Start(ctx, &dfscluster.Options{Dir: t.TempDir(), Chunkservers: 3})
	if err != nil {
		t.Fatal(err)
	}
	defer dc.Close()
	if err := dc.WaitLive(ctx, 3); err != nil {
		t.Fatal(err)
	}
	out := ok(t, "status", "--dfs", strings.Join(dc.MasterAddrs(), ","))
	if !regexp.MustCompile(`(?m)^file system: HEALTHY \(dfs leader \S+; \d+ files, \d+ chunks, 0 under-replicated, 0 missing; chunkservers 3 live, 3 healthy of 3\)$`).MatchString(out) {
		t.Errorf("status --dfs:\n%s", out)
	}
}
