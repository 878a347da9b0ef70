package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// The tests in this file run the built cellar binary, as a user would,
// against the shared in-process cluster (--cluster ADDR).

var (
	binOnce sync.Once
	binDir  string
	binPath string
	binErr  error
)

// cliTestMain runs the tests, then stops the shared cluster and removes
// the built binary (goleak checks for leaks after that).
type cliTestMain struct{ m interface{ Run() int } }

func (c cliTestMain) Run() int {
	code := c.m.Run()
	stopSharedCluster()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	return code
}

// cellarBinary builds cmd/cellar once per test run.
func cellarBinary(t *testing.T) string {
	t.Helper()
	binOnce.Do(func() {
		if binDir, binErr = os.MkdirTemp("", "cellar-cli-test-"); binErr != nil {
			return
		}
		binPath = filepath.Join(binDir, "cellar")
		out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput()
		if err != nil {
			binErr = errors.New("go build: " + err.Error() + "\n" + string(out))
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
}

// binResult is one run of the binary.
type binResult struct {
	stdout, stderr string
	code           int
}

// runBin runs the binary with args (after --cluster ADDR unless args start
// with --cluster) and stdin, in a clean environment.
func runBin(t *testing.T, stdin string, args ...string) binResult {
	t.Helper()
	bin := cellarBinary(t)
	if len(args) == 0 || args[0] != "--cluster" {
		args = append([]string{"--cluster", cluster(t)}, args...)
	}
	// A safety net against a hang, not a timing assertion.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = []string{"HOME=" + t.TempDir(), "PATH=" + os.Getenv("PATH")}
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("run cellar %v: %v", args, err)
	}
	return binResult{out.String(), errb.String(), code}
}

// binOK runs a command that must succeed silently on stderr.
func binOK(t *testing.T, args ...string) string {
	t.Helper()
	r := runBin(t, "", args...)
	if r.code != 0 || r.stderr != "" {
		t.Fatalf("cellar %s: exit %d, stderr %q", strings.Join(args, " "), r.code, r.stderr)
	}
	return r.stdout
}

// binFails runs a command that must fail with exactly one line on stderr,
// containing each of want, and nothing on stdout.
func binFails(t *testing.T, stdin string, args []string, want ...string) {
	t.Helper()
	r := runBin(t, stdin, args...)
	name := strings.Join(args, " ")
	if len(name) > 100 {
		name = name[:100] + "..."
	}
	if r.code == 0 {
		t.Errorf("cellar %s: exit 0, want a failure", name)
	}
	if strings.Count(r.stderr, "\n") != 1 || !strings.HasSuffix(r.stderr, "\n") || !strings.HasPrefix(r.stderr, "cellar: ") {
		t.Errorf("cellar %s: stderr %q, want one line starting with \"cellar: \"", name, r.stderr)
	}
	for _, w := range want {
		if !strings.Contains(r.stderr, w) {
			t.Errorf("cellar %s: stderr %q lacks %q", name, r.stderr, w)
		}
	}
	if r.stdout != "" {
		t.Errorf("cellar %s: stdout %q, want nothing", name, r.stdout)
	}
}
