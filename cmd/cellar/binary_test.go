package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"cellar/internal/testcluster"
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

// step is one command of a transcript and its expected output (want ""
// with match set: checked by the regular expression instead).
type step struct {
	args  []string
	want  string
	match string
}

// TestTutorialWebtable runs the webtable tutorial of docs/cli.md (the
// Bigtable paper's Figure 1: reversed-URL rows, a contents family keeping
// three versions, an anchor family) with the built binary on a cluster of
// its own, and checks every command's output. With CELLAR_TUTORIAL_OUT set
// it writes the transcript there (that is how docs/cli.md's copy was made).
func TestTutorialWebtable(t *testing.T) {
	c := testcluster.Start(t, testcluster.Options{Servers: 2, Masters: 1, MemFS: true})
	addr := strings.Join(c.LockAddrs(), ",")
	steps := []step{
		{args: []string{"create", "webtable", "contents:maxversions=3", "anchor", "--splits", "com.m"}},
		{args: []string{"ls"}, want: "webtable\n"},
		{args: []string{"put", "webtable", "com.cnn.www", "contents:html", "<html>CNN-t2</html>", "--ts", "2"}},
		{args: []string{"put", "webtable", "com.cnn.www", "contents:html", "<html>CNN-t3</html>", "--ts", "3"}},
		{args: []string{"put", "webtable", "com.cnn.www", "contents:html", "<html>CNN-t5</html>", "--ts", "5"}},
		{args: []string{"put", "webtable", "com.cnn.www", "contents:html", "<html>CNN-t6</html>", "--ts", "6"}},
		{args: []string{"put", "webtable", "com.cnn.www", "anchor:cnnsi.com", "CNN", "--ts", "9"}},
		{args: []string{"put", "webtable", "com.cnn.www", "anchor:my.look.ca", "CNN.com", "--ts", "8"}},
		{args: []string{"get", "webtable", "com.cnn.www"}, want: "" +
			"com.cnn.www anchor:cnnsi.com @9 CNN\n" +
			"com.cnn.www anchor:my.look.ca @8 CNN.com\n" +
			"com.cnn.www contents:html @6 <html>CNN-t6</html>\n" +
			"com.cnn.www contents:html @5 <html>CNN-t5</html>\n" +
			"com.cnn.www contents:html @3 <html>CNN-t3</html>\n"},
		{args: []string{"get", "webtable", "com.cnn.www", "--columns", "contents:html", "--versions", "1"},
			want: "com.cnn.www contents:html @6 <html>CNN-t6</html>\n"},
		{args: []string{"put", "webtable", "com.bbc.www", "contents:html", "<html>BBC</html>", "--ts", "4"}},
		{args: []string{"put", "webtable", "org.wikipedia.www", "contents:html", "<html>Wikipedia</html>", "--ts", "4"}},
		{args: []string{"put", "webtable", "org.wikipedia.www", "anchor:com.cnn.www/world", "Wikipedia article", "--ts", "7"}},
		{args: []string{"scan", "webtable", "--prefix", "com.", "--versions", "1"}, want: "" +
			"com.bbc.www contents:html @4 <html>BBC</html>\n" +
			"com.cnn.www anchor:cnnsi.com @9 CNN\n" +
			"com.cnn.www anchor:my.look.ca @8 CNN.com\n" +
			"com.cnn.www contents:html @6 <html>CNN-t6</html>\n"},
		{args: []string{"scan", "webtable", "--start", "com.m", "--columns", "anchor"},
			want: `org.wikipedia.www anchor:com.cnn.www/world @7 Wikipedia\x20article` + "\n"},
		{args: []string{"scan", "webtable", "--limit", "1", "--output", "json"},
			want: `{"row":"Y29tLmJiYy53d3c=","family":"contents","qualifier":"aHRtbA==","timestamp":4,"value":"PGh0bWw+QkJDPC9odG1sPg=="}` + "\n"},
		{args: []string{"count", "webtable"}, want: "3\n"},
		{args: []string{"family", "add", "webtable", "stats:maxversions=1"}},
		{args: []string{"incr", "webtable", "com.cnn.www", "stats:visits"}, want: "1\n"},
		{args: []string{"incr", "webtable", "com.cnn.www", "stats:visits", "41"}, want: "42\n"},
		{args: []string{"describe", "webtable"}, match: `^table webtable \(id \d+\)

FAMILY    GC POLICY
anchor    never
contents  maxversions=3
stats     maxversions=1

TABLET +START +END +SERVER
\d+ +\(start\) +com\.m +127\.0\.0\.1:\d+
\d+ +com\.m +\(end\) +127\.0\.0\.1:\d+
$`},
		{args: []string{"delete", "webtable", "com.bbc.www"}},
		{args: []string{"count", "webtable"}, want: "2\n"},
	}
	var transcript strings.Builder
	for _, s := range steps {
		out := binOK(t, append([]string{"--cluster", addr}, s.args...)...)
		fmt.Fprintf(&transcript, "$ cellar %s\n%s", shellQuote(s.args), out)
		if s.match != "" {
			if !regexp.MustCompile(s.match).MatchString(out) {
				t.Errorf("cellar %s:\n%s\nwant a match of\n%s", shellQuote(s.args), out, s.match)
			}
		} else if out != s.want {
			t.Errorf("cellar %s:\n%q\nwant\n%q", shellQuote(s.args), out, s.want)
		}
	}
	if p := os.Getenv("CELLAR_TUTORIAL_OUT"); p != "" {
		if err := os.WriteFile(p, []byte(transcript.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// shellQuote writes args as a POSIX shell would need them.
func shellQuote(args []string) string {
	q := make([]string, len(args))
	for i, a := range args {
		if a != "" && strings.IndexFunc(a, func(r rune) bool { return !strings.ContainsRune("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.,:=/@", r) }) < 0 {
			q[i] = a
		} else {
			q[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
	}
	return strings.Join(q, " ")
}
