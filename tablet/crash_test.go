package tablet

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"cellar/dfs"
	"cellar/dfs/local"
)

// The crash test re-executes the test binary as a child that writes to a
// tablet on dfs/local; TestMain sends the child to crashChild.
const (
	// crashChildEnv names the child's file system: "local:<dir>" for a
	// dfs/local root, or "dfs:<master>,<master>..." for a dfs cluster.
	crashChildEnv = "CELLAR_TABLET_CRASH_CHILD"
	crashRunEnv   = "CELLAR_TABLET_CRASH_RUN" // run number, part of row keys
)

// crashColumns are the cells every crash-test Apply writes, all with the
// same marker value, so that a torn row is visible.
var crashColumns = []Column{
	{Family: "a", Qualifier: []byte("x")}, {Family: "a", Qualifier: []byte("y")},
	{Family: "b", Qualifier: []byte("x")}, {Family: "b", Qualifier: []byte("z")},
}

// crashFS opens the file system a crashChildEnv value names. The dfs
// client is returned as a closer; nil for dfs/local.
func crashFS(ctx context.Context, target string) (dfs.FS, io.Closer, error) {
	kind, arg, _ := strings.Cut(target, ":")
	switch kind {
	case "local":
		fs, err := local.Open(arg)
		return fs, nil, err
	case "dfs":
		c, err := dfs.Dial(ctx, strings.Split(arg, ","), &dfs.ClientOptions{RetryTimeout: 20 * time.Second})
		if err != nil {
			return nil, nil, err
		}
		return c, c, nil
	}
	return nil, nil, fmt.Errorf("crash test: unknown file system %q", target)
}

func crashOptions(fs dfs.FS) *Options {
	return &Options{
		FS: fs, Dir: "t", ID: 3,
		Families:          []FamilyOptions{{Name: "a"}, {Name: "b", GC: MaxVersions(1)}},
		MemtableSize:      32 << 10,
		CompactionTrigger: 3,
		Logger:            discardLogger(),
	}
}

// crashChild writes rows run<r>-<g>-<n> with Sync durability from four
// goroutines and prints "ack <row>" for each acknowledged Apply, until it
// is killed.
func crashChild() {
	ctx := context.Background()
	fs, _, err := crashFS(ctx, os.Getenv(crashChildEnv))
	if err != nil {
		fmt.Println("error", err)
		os.Exit(2)
	}
	tab, err := Open(ctx, crashOptions(fs))
	if err != nil {
		fmt.Println("error", err)
		os.Exit(2)
	}
	run := os.Getenv(crashRunEnv)
	out := bufio.NewWriter(os.Stdout)
	var mu sync.Mutex
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; ; n++ {
				row := fmt.Sprintf("run%s-%d-%06d", run, g, n)
				muts := make([]Mutation, 0, len(crashColumns)+1)
				for _, c := range crashColumns {
					muts = append(muts, SetCell(c.Family, c.Qualifier, ServerTime, []byte(row)))
				}
				if n%7 == 0 {
					muts = append([]Mutation{DeleteRow()}, muts...)
				}
				if err := tab.Apply(ctx, []byte(row), muts, nil); err != nil {
					mu.Lock()
					fmt.Fprintln(out, "error", err)
					out.Flush()
					mu.Unlock()
					os.Exit(2)
				}
				mu.Lock()
				fmt.Fprintln(out, "ack", row)
				out.Flush()
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
}

// TestCrashAcknowledgedWritesSurvive kills (SIGKILL) a child writing Sync
// rows to a tablet on dfs/local, at random moments (after a random number
// of acknowledgements), 20 times. After each kill the tablet reopens, every
// acknowledged row is there, and no row is torn: each has all its cells
// with its own marker.
func TestCrashAcknowledgedWritesSurvive(t *testing.T) {
	if testing.Short() {
		t.Skip("starts child processes; skipped with -short")
	}
	root := t.TempDir()
	fs, err := local.Open(root)
	if err != nil {
		t.Fatal(err)
	}
	runCrashTest(t, "local:"+root, fs, 20)
}

// runCrashTest kills children writing to the file system named by target
// (parentFS is the parent's view of it) runs times. Before each reopen, when
// the file system has writer leases, it recovers them on every file of the
// tablet, as the master does for a dead tablet server's files: the dead
// child can then write nothing more, and the files' lengths are settled.
func runCrashTest(t *testing.T, target string, parentFS dfs.FS, runs int) {
	seed := uint64(os.Getpid())
	if s := os.Getenv("CELLAR_TABLET_SEED"); s != "" {
		seed, _ = strconv.ParseUint(s, 10, 64)
	}
	t.Logf("seed %d (replay with CELLAR_TABLET_SEED)", seed)
	rng := rand.New(rand.NewPCG(seed, 7))
	acked := map[string]bool{}
	for run := 0; run < runs; run++ {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), crashChildEnv+"="+target, crashRunEnv+"="+fmt.Sprint(run))
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		want := 1 + rng.IntN(300)
		sc := bufio.NewScanner(stdout)
		n := 0
		for n < want && sc.Scan() {
			line := sc.Text()
			row, ok := strings.CutPrefix(line, "ack ")
			if !ok {
				cmd.Process.Kill()
				cmd.Wait()
				t.Fatalf("run %d: child said %q (stderr %s)", run, line, stderr.String())
			}
			acked[row] = true
			n++
		}
		if err := cmd.Process.Kill(); err != nil {
			t.Fatal(err)
		}
		// Acknowledgements printed before the kill took effect count too.
		for sc.Scan() {
			if row, ok := strings.CutPrefix(sc.Text(), "ack "); ok {
				acked[row] = true
			}
		}
		cmd.Wait()
		if n < want {
			t.Fatalf("run %d: child stopped after %d acks (stderr %s)", run, n, stderr.String())
		}
		if lr, ok := parentFS.(dfs.LeaseRecoverer); ok {
			recoverLeases(t, parentFS, lr, "t")
		}
		verifyCrashTablet(t, parentFS, run, acked)
	}
}

// recoverLeases calls RecoverLease on every file below dir.
func recoverLeases(t *testing.T, fs dfs.FS, lr dfs.LeaseRecoverer, dir string) {
	t.Helper()
	ctx := context.Background()
	ents, err := fs.List(ctx, dir)
	if err != nil {
		t.Fatalf("list %s: %v", dir, err)
	}
	for _, e := range ents {
		name := dir + "/" + e.Name
		if e.IsDir {
			recoverLeases(t, fs, lr, name)
			continue
		}
		if err := lr.RecoverLease(ctx, name); err != nil && !errors.Is(err, dfs.ErrNotFound) {
			t.Fatalf("recover lease of %s: %v", name, err)
		}
	}
}

func verifyCrashTablet(t *testing.T, fs dfs.FS, run int, acked map[string]bool) {
	t.Helper()
	ctx := context.Background()
	tab, err := Open(ctx, crashOptions(fs))
	if err != nil {
		t.Fatalf("run %d: reopen: %v", run, err)
	}
	defer tab.Close()
	seen := map[string]bool{}
	err = tab.Scan(ctx, &ScanOptions{Read: ReadOptions{MaxVersions: 1}}, func(r *Row) bool {
		seen[string(r.Key)] = true
		if len(r.Cells) != len(crashColumns) {
			t.Errorf("run %d: torn row %s", run, fmtRow(r))
			return true
		}
		for i, c := range r.Cells {
			if c.Family != crashColumns[i].Family || !bytes.Equal(c.Qualifier, crashColumns[i].Qualifier) || !bytes.Equal(c.Value, r.Key) {
				t.Errorf("run %d: torn row %s", run, fmtRow(r))
				break
			}
		}
		return true
	})
	if err != nil {
		t.Fatalf("run %d: scan: %v", run, err)
	}
	missing := 0
	for row := range acked {
		if !seen[row] {
			missing++
			if missing < 5 {
				t.Errorf("run %d: acknowledged row %s is missing", run, row)
			}
		}
	}
	if missing > 0 || t.Failed() {
		t.Fatalf("run %d: %d of %d acknowledged rows missing", run, missing, len(acked))
	}
	st := tab.Stats()
	t.Logf("run %d: %d rows acknowledged, %d present; %d SSTables in a, %d in b", run, len(acked), len(seen), st.Families[0].Files, st.Families[1].Files)
}
