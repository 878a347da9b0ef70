package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"slices"
	"testing"
	"time"

	"cellar/bench/ycsb"
	"cellar/client"
)

// TestMain lets the test binary serve as the emulator's process, as the
// command does: startEmulator re-executes os.Executable().
func TestMain(m *testing.M) {
	if len(os.Args) == 3 && os.Args[1] == serveEmulatorFlag {
		if err := serveEmulator(os.Args[2]); err != nil {
			os.Stderr.WriteString(err.Error() + "\n")
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func TestEmulator_RunsEveryWorkloadAndStopsOnClose(t *testing.T) {
	ctx := context.Background()
	emu, err := startEmulator(ctx)
	if err != nil {
		t.Fatal(err)
	}
	closed := false
	defer func() {
		if !closed {
			emu.Close()
		}
	}()
	cfg := ycsb.Config{RecordCount: 300, OpCount: 200, Threads: 4, Seed: 1}
	var log bytes.Buffer
	rs, err := ycsb.RunAll(ctx, []ycsb.System{emu}, cfg, &log)
	if err != nil {
		t.Fatalf("RunAll: %v\n%s", err, log.String())
	}
	if got := len(rs[0].Workloads); got != 6 {
		t.Fatalf("%d workloads, want 6", got)
	}
	for _, p := range rs[0].Workloads {
		if p.Ops != 200 {
			t.Errorf("workload %s: %d ops, want 200", p.Workload, p.Ops)
		}
	}
	dir := emu.dir
	closed = true
	if err := emu.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if emu.cmd.ProcessState == nil || !emu.cmd.ProcessState.Exited() {
		t.Errorf("emulator process state after Close: %v", emu.cmd.ProcessState)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("temporary dir %s still there after Close (stat: %v)", dir, err)
	}
}

func TestEmulator_ReadOfMissingRowIsErrNotFound(t *testing.T) {
	ctx := context.Background()
	emu, err := startEmulator(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer emu.Close()
	db, err := emu.Open(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.Read(ctx, "user1"); !errors.Is(err, ycsb.ErrNotFound) {
		t.Errorf("Read(missing) = %v, want ErrNotFound", err)
	}
	if err := db.ReadModifyWrite(ctx, "user1", map[string][]byte{"field0": []byte("x")}); !errors.Is(err, ycsb.ErrNotFound) {
		t.Errorf("ReadModifyWrite(missing) = %v, want ErrNotFound", err)
	}
	for _, k := range []string{"user3", "user1", "user2"} {
		if err := db.Insert(ctx, k, map[string][]byte{"field0": []byte("v")}); err != nil {
			t.Fatal(err)
		}
	}
	if n, err := db.Scan(ctx, "user2", 10); n != 2 || err != nil {
		t.Errorf("Scan(user2, 10) = %d, %v; want 2, nil", n, err)
	}
	if n, err := db.Scan(ctx, "user1", 2); n != 2 || err != nil {
		t.Errorf("Scan(user1, 2) = %d, %v; want 2, nil", n, err)
	}
}

func TestRun_BothSystemsSideBySide(t *testing.T) {
	if err := run(context.Background(), ycsb.Config{RecordCount: 50, OpCount: 50, Threads: 2, Seed: 1}, "", client.Sync, false, false); err != nil {
		t.Errorf("run: %v", err)
	}
}

func TestRun_UnreachableCellarFailsAndStopsEmulator(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := run(ctx, ycsb.Config{RecordCount: 10, OpCount: 10, Threads: 1, Seed: 1}, "127.0.0.1:1", client.Sync, false, false); err == nil {
		t.Errorf("run with an unreachable --cellar-addr succeeded")
	}
}

func TestSplitAddrs(t *testing.T) {
	for _, c := range []struct {
		in   string
		want []string
	}{{"", nil}, {" , ", nil}, {"127.0.0.1:1", []string{"127.0.0.1:1"}}, {"127.0.0.1:1, 127.0.0.1:2,", []string{"127.0.0.1:1", "127.0.0.1:2"}}} {
		if got := splitAddrs(c.in); !slices.Equal(got, c.want) {
			t.Errorf("splitAddrs(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

// TestProcCPU: /proc/<pid>/stat's CPU time of this process agrees with
// getrusage's to within a few clock ticks, and a process that does not
// exist is an error.
func TestProcCPU(t *testing.T) {
	for start, _ := ycsb.ProcessCPU(); ; { // burn some CPU so both are well above a tick
		if now, _ := ycsb.ProcessCPU(); now-start > 100*time.Millisecond {
			break
		}
	}
	before, err := ycsb.ProcessCPU()
	if err != nil {
		t.Fatal(err)
	}
	got, err := procCPU(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	after, err := ycsb.ProcessCPU()
	if err != nil {
		t.Fatal(err)
	}
	const slack = 50 * time.Millisecond // ticks of 10 ms, rounded down per thread
	if got < before-slack || got > after+slack {
		t.Errorf("procCPU = %v, getrusage %v..%v", got, before, after)
	}
	if _, err := procCPU(1 << 30); err == nil {
		t.Error("procCPU of a process that does not exist: no error")
	}
}
