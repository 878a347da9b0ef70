package wal_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"sync"
	"testing"

	"cellar/dfs/local"
	"cellar/internal/keys"
	"cellar/wal"
)

// killChildEnv names the directory the child process of TestKillDuringAppends
// writes its log in; the child runs only when it is set.
const killChildEnv = "CELLAR_WAL_KILL_CHILD_DIR"

// TestKillChild is the child process of TestKillDuringAppends: it appends
// with sync=true from several goroutines on dfs/local and prints every
// acknowledgement, until it is killed.
func TestKillChild(t *testing.T) {
	dir := os.Getenv(killChildEnv)
	if dir == "" {
		t.Skip("the child process of TestKillDuringAppends; runs only under it")
	}
	fs, err := local.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	l, err := wal.Open(context.Background(), fs, &wal.Options{Dir: "log", Logger: quiet, MaxFileSize: 64 << 10})
	if err != nil {
		t.Fatal(err)
	}
	out := bufio.NewWriter(os.Stdout)
	var mu sync.Mutex
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 1; ; i++ {
				seq := keys.SeqNum(i)
				if err := l.Append(context.Background(), wal.Entry{Tablet: uint64(g), Seq: seq, Data: data(uint64(g), seq, 100+i%3000)}, true); err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				fmt.Fprintf(out, "%d %d\n", g, i)
				out.Flush()
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
}

// TestKillDuringAppends kills (SIGKILL) a process appending to a log on
// dfs/local: every entry it acknowledged is replayed, each tablet's entries
// form a gap-free prefix, and a new Log can start after the dead one's file.
func TestKillDuringAppends(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a child process; skipped with -short")
	}
	dir := t.TempDir()
	for round := range 2 { // the second round starts after the first's unsealed file
		cmd := exec.Command(os.Args[0], "-test.run=^TestKillChild$")
		cmd.Env = append(os.Environ(), killChildEnv+"="+dir)
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		acked := map[uint64]int{}
		sc := bufio.NewScanner(stdout)
		for n := 0; n < 400 && sc.Scan(); n++ {
			var g uint64
			var i int
			if _, err := fmt.Sscanf(sc.Text(), "%d %d", &g, &i); err != nil {
				t.Fatalf("child printed %q", sc.Text())
			}
			acked[g] = max(acked[g], i)
		}
		if err := cmd.Process.Kill(); err != nil {
			t.Fatal(err)
		}
		cmd.Wait()
		fs, err := local.Open(dir)
		if err != nil {
			t.Fatal(err)
		}
		next := map[uint64]int{}
		_, err = wal.Replay(context.Background(), fs, "log", &wal.ReplayOptions{Logger: quiet}, func(e wal.Entry) error {
			if e.Seq == 1 {
				next[e.Tablet] = 0 // a new round starts the tablet's sequence again
			}
			if int(e.Seq) != next[e.Tablet]+1 {
				return fmt.Errorf("tablet %d: %v after seq %d", e.Tablet, e.Seq, next[e.Tablet])
			}
			next[e.Tablet] = int(e.Seq)
			return nil
		})
		if err != nil {
			t.Fatalf("round %d: Replay after kill: %v", round, err)
		}
		if len(acked) == 0 {
			t.Fatalf("round %d: the child acknowledged nothing", round)
		}
		for g, i := range acked {
			if next[g] < i {
				t.Fatalf("round %d: tablet %d replayed up to seq %d, but seq %d was acknowledged", round, g, next[g], i)
			}
		}
	}
}
