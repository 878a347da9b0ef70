package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"cloud.google.com/go/bigtable"
	"cloud.google.com/go/bigtable/bttest"
	"google.golang.org/api/option"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"cellar/bench/ycsb"
)

// serveEmulatorFlag is the hidden first argument that makes this binary run
// the emulator instead of the benchmark.
const serveEmulatorFlag = "--serve-emulator"

const (
	project  = "ycsb"
	instance = "ycsb"
	table    = "usertable"
	family   = "f"
)

// serveEmulator runs bttest on a loopback port, writes its address to
// addrFile (atomically: a temporary file renamed into place) and serves
// until its standard input reaches EOF (the parent closed it or died) or it
// gets SIGINT/SIGTERM.
func serveEmulator(addrFile string) error {
	srv, err := bttest.NewServer("127.0.0.1:0")
	if err != nil {
		return err
	}
	defer srv.Close()
	tmp := addrFile + ".tmp"
	if err := os.WriteFile(tmp, []byte(srv.Addr), 0o600); err != nil {
		return err
	}
	if err := os.Rename(tmp, addrFile); err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	eof := make(chan struct{})
	go func() { // ends when stdin closes, which also happens when the parent exits
		io.Copy(io.Discard, os.Stdin)
		close(eof)
	}()
	select {
	case <-eof:
	case <-ctx.Done():
	}
	return nil
}

// emulatorSystem is the Cloud Bigtable emulator (bttest, in-memory) in a
// child process of its own, used through the official client, so that
// client and server are split across processes as they are for Cellar.
type emulatorSystem struct {
	dir   string // holds the address file
	cmd   *exec.Cmd
	stdin io.WriteCloser
	done  chan struct{} // closed when the child has exited
	addr  string
}

var _ ycsb.System = (*emulatorSystem)(nil)

// startEmulator re-executes this binary with --serve-emulator and waits
// (bounded by ctx and 30 s) for the child to publish its address. On error
// the child is killed and the temporary directory removed.
func startEmulator(ctx context.Context) (_ *emulatorSystem, err error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "ycsb-bttest-")
	if err != nil {
		return nil, err
	}
	s := &emulatorSystem{dir: dir, done: make(chan struct{})}
	addrFile := filepath.Join(dir, "addr")
	s.cmd = exec.Command(exe, serveEmulatorFlag, addrFile)
	s.cmd.Stdout, s.cmd.Stderr = os.Stderr, os.Stderr
	if s.stdin, err = s.cmd.StdinPipe(); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	if err := s.cmd.Start(); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("start emulator: %w", err)
	}
	go func() {
		s.cmd.Wait()
		close(s.done)
	}()
	defer func() {
		if err != nil {
			s.Close()
		}
	}()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		b, rerr := os.ReadFile(addrFile)
		if rerr == nil {
			s.addr = strings.TrimSpace(string(b))
			slog.Info("bttest emulator started", "pid", s.cmd.Process.Pid, "addr", s.addr)
			return s, nil
		}
		if !errors.Is(rerr, os.ErrNotExist) {
			return nil, rerr
		}
		select {
		case <-s.done:
			return nil, fmt.Errorf("emulator exited before publishing its address: %v", s.cmd.ProcessState)
		case <-ctx.Done():
			return nil, fmt.Errorf("waiting for the emulator's address: %w", ctx.Err())
		case <-tick.C:
		}
	}
}

func (s *emulatorSystem) Name() string { return "bttest" }

var _ ycsb.CPUMeter = (*emulatorSystem)(nil)

// CPUTime implements ycsb.CPUMeter: the emulator child's CPU time plus this
// process's (the client's).
func (s *emulatorSystem) CPUTime() (time.Duration, error) {
	self, err := ycsb.ProcessCPU()
	if err != nil {
		return 0, err
	}
	child, err := procCPU(s.cmd.Process.Pid)
	if err != nil {
		return 0, err
	}
	return self + child, nil
}

// procCPU reads a live process's CPU time (utime + stime) from
// /proc/<pid>/stat, in clock ticks of 1/100 s (USER_HZ, 100 on Linux).
func procCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name (field 2) is in parentheses and may hold spaces:
	// fields are counted from after its closing parenthesis.
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/%d/stat: no command name", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 { // state is field 3 (f[0]); utime, stime are 14, 15
		return 0, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f)+2)
	}
	var ticks int64
	for _, s := range f[11:13] {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("/proc/%d/stat: %w", pid, err)
		}
		ticks += n
	}
	return time.Duration(ticks) * (time.Second / 100), nil
}

// Close stops the child (EOF on its stdin; killed if it has not exited
// within 5 s) and removes the temporary directory.
func (s *emulatorSystem) Close() error {
	s.stdin.Close()
	var err error
	select {
	case <-s.done:
	case <-time.After(5 * time.Second):
		err = errors.New("emulator did not exit within 5s; killed")
		s.cmd.Process.Kill()
		<-s.done
	}
	if rerr := os.RemoveAll(s.dir); err == nil {
		err = rerr
	}
	return err
}

func (s *emulatorSystem) dial() (*grpc.ClientConn, error) {
	return grpc.NewClient(s.addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
}

// Open creates table "usertable" with family "f" (GC: keep 1 version) and
// returns a client on one gRPC connection, as the client makes for
// BIGTABLE_EMULATOR_HOST, with the built-in metrics and session plane off.
func (s *emulatorSystem) Open(ctx context.Context) (ycsb.DB, error) {
	aconn, err := s.dial()
	if err != nil {
		return nil, err
	}
	defer aconn.Close()
	admin, err := bigtable.NewAdminClient(ctx, project, instance, option.WithGRPCConn(aconn))
	if err != nil {
		return nil, err
	}
	defer admin.Close()
	err = admin.CreateTableFromConf(ctx, &bigtable.TableConf{
		TableID:        table,
		ColumnFamilies: map[string]bigtable.Family{family: {GCPolicy: bigtable.MaxVersionsPolicy(1)}},
	})
	if err != nil {
		return nil, fmt.Errorf("create table %s: %w", table, err)
	}
	conn, err := s.dial()
	if err != nil {
		return nil, err
	}
	c, err := bigtable.NewClientWithConfig(ctx, project, instance,
		bigtable.ClientConfig{MetricsProvider: bigtable.NoopMetricsProvider{}, DisableSession: true},
		option.WithGRPCConn(conn))
	if err != nil {
		conn.Close()
		return nil, err
	}
	return &bigtableDB{c: c, conn: conn, t: c.Open(table)}, nil
}
