package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"cellar/client"
	"cellar/internal/standalone"
)

// cellarBin builds the cellar binary into a test directory (the build
// cache makes the second build a link step).
func cellarBin(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds and runs the binary; skipped with -short")
	}
	bin := filepath.Join(t.TempDir(), "cellar")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// standaloneProc is a running `cellar standalone`.
type standaloneProc struct {
	cmd    *exec.Cmd
	addr   string
	stdout *bytes.Buffer // everything after the ready line
	stderr bytes.Buffer
	done   chan error
}

// startStandalone starts the binary on dir and waits for its ready line.
func startStandalone(t *testing.T, bin, dir string) *standaloneProc {
	t.Helper()
	p := &standaloneProc{stdout: new(bytes.Buffer), done: make(chan error, 1)}
	p.cmd = exec.Command(bin, "standalone", "--listen", "127.0.0.1:0", "--data", dir)
	p.cmd.Stderr = &p.stderr
	out, err := p.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.cmd.Process.Kill(); <-p.done })
	lines := make(chan string, 16)
	var rest sync.WaitGroup
	rest.Add(1)
	go func() {
		defer rest.Done()
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	timeout := time.After(time.Minute)
	for ready := false; !ready; {
		select {
		case l, ok := <-lines:
			if !ok {
				p.cmd.Wait()
				t.Fatalf("cellar standalone exited before it was ready; stderr:\n%s", p.stderr.String())
			}
			t.Logf("standalone: %s", l)
			if a, ok := strings.CutPrefix(l, "cellar standalone listening on "); ok {
				p.addr, _, _ = strings.Cut(a, ",")
			}
			if strings.HasPrefix(l, "ready:") {
				ready = true
			}
			if strings.HasPrefix(l, "not ready") {
				t.Fatalf("standalone: %s", l)
			}
		case <-timeout:
			t.Fatalf("no ready line within a minute; stderr:\n%s", p.stderr.String())
		}
	}
	if p.addr == "" {
		t.Fatal("no listening line")
	}
	go func() {
		var b bytes.Buffer
		for l := range lines {
			b.WriteString(l + "\n")
		}
		rest.Wait()
		p.stdout = &b
		p.done <- p.cmd.Wait()
	}()
	return p
}

// stop sends sig and waits for the exit.
func (p *standaloneProc) stop(t *testing.T, sig syscall.Signal) error {
	t.Helper()
	p.cmd.Process.Signal(sig)
	select {
	case err := <-p.done:
		p.done <- err // for the cleanup
		return err
	case <-time.After(time.Minute):
		t.Fatalf("cellar standalone did not exit within a minute of %v; stderr:\n%s", sig, p.stderr.String())
		return nil
	}
}

func dialStandalone(t *testing.T, addr string) *client.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := client.Dial(ctx, []string{addr}, client.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// writeRows writes rows with sync durability (the check writers) and
// returns the log of acknowledged keys.
func writeRows(t *testing.T, addr string, log *bytes.Buffer, rows int64) {
	t.Helper()
	c := dialStandalone(t, addr)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := ensureCheckTable(ctx, c, "t"); err != nil {
		t.Fatal(err)
	}
	if err := runCheckWriters(ctx, c.Open("t"), log, "", 4, rows, 10*time.Second, io.Discard, io.Discard); err != nil {
		t.Fatal(err)
	}
}

func verifyRows(t *testing.T, addr string, log []byte) {
	t.Helper()
	c := dialStandalone(t, addr)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var out bytes.Buffer
	if err := verifyCheckLog(ctx, c.Open("t"), bytes.NewReader(log), &out); err != nil {
		t.Fatalf("after restart: %v", err)
	}
	t.Log(strings.TrimSpace(out.String()))
}

// TestStandaloneRestarts: the binary serves what was written after a clean
// stop (SIGTERM, exit status 0) and after a crash (SIGKILL while writers
// write with sync durability): every acknowledged row is there.
func TestStandaloneRestarts(t *testing.T) {
	bin := cellarBin(t)
	dir := t.TempDir()
	var acked bytes.Buffer

	p := startStandalone(t, bin, dir)
	writeRows(t, p.addr, &acked, 300)
	if err := p.stop(t, syscall.SIGTERM); err != nil {
		t.Fatalf("SIGTERM: exit %v, want status 0; stderr:\n%s", err, p.stderr.String())
	}
	if !strings.Contains(p.stdout.String(), "stopped") {
		t.Errorf("after SIGTERM stdout = %q, want a \"stopped\" line", p.stdout.String())
	}

	p = startStandalone(t, bin, dir)
	verifyRows(t, p.addr, acked.Bytes())

	// SIGKILL while writers are writing.
	var during safeBuffer
	c := dialStandalone(t, p.addr)
	ctx, cancel := context.WithCancel(context.Background())
	werr := make(chan error, 1)
	go func() {
		werr <- runCheckWriters(ctx, c.Open("t"), &during, "", 4, 0, 5*time.Second, io.Discard, io.Discard)
	}()
	for during.Len() < 20*len("00000000-w000-000000000\n") {
		time.Sleep(10 * time.Millisecond)
	}
	if err := p.stop(t, syscall.SIGKILL); err == nil {
		t.Fatal("SIGKILL: exit status 0")
	}
	cancel()
	if err := <-werr; err != nil {
		t.Fatal(err)
	}
	acked.Write(during.Bytes())

	p = startStandalone(t, bin, dir)
	verifyRows(t, p.addr, acked.Bytes())
	if err := p.stop(t, syscall.SIGTERM); err != nil {
		t.Fatalf("second SIGTERM: exit %v; stderr:\n%s", err, p.stderr.String())
	}
}

// TestStandaloneDirInUse: a second process on the same data directory
// fails at once with a one-line error and a non-zero exit.
func TestStandaloneDirInUse(t *testing.T) {
	bin := cellarBin(t)
	dir := t.TempDir()
	p := startStandalone(t, bin, dir)
	out, err := exec.Command(bin, "standalone", "--listen", "127.0.0.1:0", "--data", dir).CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() == 0 {
		t.Fatalf("second standalone on %s: %v, want a non-zero exit", dir, err)
	}
	if got := strings.TrimSpace(string(out)); !strings.Contains(got, "in use") || strings.Count(got, "\n") != 0 {
		t.Errorf("second standalone said %q, want one line saying the directory is in use", got)
	}
	if err := p.stop(t, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
}

// safeBuffer is a bytes.Buffer shared by the writers and the test.
type safeBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *safeBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *safeBuffer) Len() int { s.mu.Lock(); defer s.mu.Unlock(); return s.b.Len() }
func (s *safeBuffer) Bytes() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return bytes.Clone(s.b.Bytes())
}

// TestCheckVerifyFindsMissing: the verifier fails, naming the row, when a
// logged key was never written or holds another value.
func TestCheckVerifyFindsMissing(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	n, err := standalone.Start(ctx, standalone.Options{Dir: t.TempDir(), Listen: "127.0.0.1:0", Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	var log bytes.Buffer
	writeRows(t, n.Addr(), &log, 50)
	verifyRows(t, n.Addr(), log.Bytes()) // all there

	c := dialStandalone(t, n.Addr())
	m := client.NewMutation()
	m.Set(checkFamily, checkQualifier, checkTimestamp, []byte("not the expected value"))
	wrong := checkKey(99, 0)
	if err := c.Open("t").Apply(ctx, wrong, m); err != nil {
		t.Fatal(err)
	}
	missing := checkKey(99, 1)
	for _, extra := range []string{missing, wrong} {
		bad := append(bytes.Clone(log.Bytes()), extra+"\n"...)
		var out bytes.Buffer
		err := verifyCheckLog(ctx, c.Open("t"), bytes.NewReader(bad), &out)
		if err == nil || !strings.Contains(err.Error(), extra) {
			t.Errorf("verify with %s logged = %v, want an error naming it", extra, err)
		}
	}
}
