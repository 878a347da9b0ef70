package main

import (
	"bytes"
	"cmp"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
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
		if a != "" && strings.IndexFunc(a, func(r rune) bool {
			return !strings.ContainsRune("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.,:=/@", r)
		}) < 0 {
			q[i] = a
		} else {
			q[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
	}
	return strings.Join(q, " ")
}

// TestShellFromStdin feeds the shell a script on standard input: every
// command runs on one connection, a failing line prints one error line and
// the shell goes on, and the exit status reports the failure at the end.
func TestShellFromStdin(t *testing.T) {
	script := `# a comment, then a blank line

create shelltab f:maxversions=2
put shelltab r1 f:a "one two" --ts 10
put shelltab r1 f:b 'it''s' --ts 11
get shelltab r1
get nosuchtable r1
scan shelltab --columns f:b
frobnicate
count shelltab
help
drop shelltab
exit
put shelltab r2 f:a never-run
`
	r := runBin(t, script, "shell")
	wantOut := "" +
		`r1 f:a @10 one\x20two` + "\n" +
		"r1 f:b @11 its\n" +
		"r1 f:b @11 its\n" +
		"1\n"
	if !strings.HasPrefix(r.stdout, wantOut) {
		t.Errorf("shell stdout:\n%s\nwant it to start with\n%s", r.stdout, wantOut)
	}
	for _, w := range []string{"Commands (", "  scan ", "  exit, quit "} {
		if !strings.Contains(r.stdout, w) {
			t.Errorf("help output lacks %q:\n%s", w, r.stdout)
		}
	}
	lines := strings.Split(strings.TrimSuffix(r.stderr, "\n"), "\n")
	if len(lines) != 3 || !strings.Contains(lines[0], `"nosuchtable"`) || !strings.Contains(lines[1], `unknown command "frobnicate"`) ||
		lines[2] != "cellar: shell: 2 of 11 commands failed" {
		t.Errorf("shell stderr:\n%s\nwant the two failures and a summary, one line each", r.stderr)
	}
	if r.code == 0 {
		t.Error("shell exited 0 after failed commands")
	}
	if out := binOK(t, "ls"); strings.Contains(out, "shelltab") {
		t.Errorf("drop in the shell did not run, or exit did not stop it: ls = %q", out)
	}
}

// TestShellCleanScriptExitsZero checks that a script without failures
// exits 0 and prints nothing on stderr.
func TestShellCleanScriptExitsZero(t *testing.T) {
	r := runBin(t, "ls\nhelp ls\n", "shell")
	if r.code != 0 || r.stderr != "" || !strings.Contains(r.stdout, "List the tables") {
		t.Errorf("shell: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
}

// randomCells makes n distinct cells of random binary rows, qualifiers and
// values (with NUL, 0xff, newlines, quotes, invalid UTF-8, empty
// qualifiers and values), in families f0..f2.
func randomCells(rng *rand.Rand, n int) []cellJSON {
	randBytes := func(min, max int) []byte {
		b := make([]byte, min+rng.IntN(max-min+1))
		for i := range b {
			switch rng.IntN(4) {
			case 0:
				b[i] = []byte{0, 0xff, '\n', ' ', '\\', '"', 0x80}[rng.IntN(7)]
			default:
				b[i] = byte(rng.IntN(256))
			}
		}
		return b
	}
	seen := map[string]bool{}
	var cells []cellJSON
	rows := make([][]byte, n/4+1)
	for i := range rows {
		rows[i] = randBytes(1, 24)
	}
	for len(cells) < n {
		c := cellJSON{Row: rows[rng.IntN(len(rows))], Family: fmt.Sprintf("f%d", rng.IntN(3)), Qualifier: randBytes(0, 12),
			Timestamp: rng.Int64N(1 << 50), Value: randBytes(0, 300)}
		k := fmt.Sprintf("%q/%s/%q/%d", c.Row, c.Family, c.Qualifier, c.Timestamp)
		if seen[k] {
			continue
		}
		seen[k] = true
		cells = append(cells, c)
	}
	return cells
}

// sortCells puts cells in the store's order: row, family, qualifier,
// timestamp descending.
func sortCells(cells []cellJSON) {
	slices.SortFunc(cells, func(a, b cellJSON) int {
		if c := bytes.Compare(a.Row, b.Row); c != 0 {
			return c
		}
		if c := strings.Compare(a.Family, b.Family); c != 0 {
			return c
		}
		if c := bytes.Compare(a.Qualifier, b.Qualifier); c != 0 {
			return c
		}
		return cmp.Compare(b.Timestamp, a.Timestamp)
	})
}

func jsonLines(t *testing.T, cells []cellJSON) string {
	var b strings.Builder
	cw, _ := newCellWriter(&b, "json")
	for _, c := range cells {
		if err := cw.write(c); err != nil {
			t.Fatal(err)
		}
	}
	return b.String()
}

// TestImportExportRoundTrip imports random binary cells (in random order,
// from a file and from standard input), exports them to a file and to
// standard output, and checks that every byte came back, in the store's
// order; the text output of scan decodes back to the same cells.
func TestImportExportRoundTrip(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("CELLAR_TEST_SEED"); s != "" {
		fmt.Sscan(s, &seed)
	}
	t.Logf("seed %d (set CELLAR_TEST_SEED to repeat)", seed)
	rng := rand.New(rand.NewPCG(seed, seed))
	cells := randomCells(rng, 3000)
	dir := t.TempDir()
	in := filepath.Join(dir, "in.jsonl")
	if err := os.WriteFile(in, []byte(jsonLines(t, cells)), 0o644); err != nil {
		t.Fatal(err)
	}
	binOK(t, "create", "roundtrip", "f0", "f1", "f2", "--splits", "\x40,\x80,\xc0")
	if out := binOK(t, "import", "roundtrip", in); out != "imported 3000 cells\n" {
		t.Fatalf("import: %q", out)
	}
	sortCells(cells)
	want := jsonLines(t, cells)
	outFile := filepath.Join(dir, "out.jsonl")
	if out := binOK(t, "export", "roundtrip", outFile); !strings.HasPrefix(out, "exported 3000 cells of ") {
		t.Errorf("export: %q", out)
	}
	got, err := os.ReadFile(outFile)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != want {
		gl, wl := strings.Split(string(got), "\n"), strings.Split(want, "\n")
		for i := range min(len(gl), len(wl)) {
			if gl[i] != wl[i] {
				t.Fatalf("export differs from the imported cells (seed %d) at line %d:\n%s\nwant\n%s", seed, i+1, gl[i], wl[i])
			}
		}
		t.Fatalf("export differs from the imported cells (seed %d): %d lines, want %d", seed, len(gl), len(wl))
	}
	// From standard input into another table, out to standard output.
	binOK(t, "create", "roundtrip2", "f0", "f1", "f2")
	if r := runBin(t, string(got), "import", "roundtrip2", "-"); r.code != 0 || r.stdout != "imported 3000 cells\n" {
		t.Fatalf("import -: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	if out := binOK(t, "export", "roundtrip2", "-"); out != want {
		t.Fatalf("export - differs (seed %d)", seed)
	}
	// The text form of scan decodes back to the same cells.
	text := binOK(t, "scan", "roundtrip")
	var decoded []cellJSON
	for i, line := range strings.Split(strings.TrimSuffix(text, "\n"), "\n") {
		c, err := parseTextCell(line)
		if err != nil {
			t.Fatalf("scan line %d %q: %v", i+1, line, err)
		}
		decoded = append(decoded, c)
	}
	if got := jsonLines(t, decoded); got != want {
		t.Fatalf("scan's text output does not decode to the cells (seed %d)", seed)
	}
}

// TestBadInputBinary runs each bad input of issue 6 through the binary:
// each exits non-zero with exactly one line on stderr naming the problem,
// and nothing is written.
func TestBadInputBinary(t *testing.T) {
	binOK(t, "create", "badbin", "f:maxversions=5")
	binOK(t, "put", "badbin", "r", "f:q", "v", "--ts", "1")
	const content = "r f:q @1 v\n"
	dir := t.TempDir()
	big := filepath.Join(dir, "big")
	if err := os.WriteFile(big, bytes.Repeat([]byte("x"), 10<<20+1), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"frobnicate"}, []string{`unknown command "frobnicate"`}},
		{[]string{"scan", "badbin", "--bogus"}, []string{"unknown flag: --bogus"}},
		{[]string{"put", "badbin", "r", "f:q"}, []string{"missing arguments", "put TABLE ROW FAMILY:QUALIFIER VALUE"}},
		{[]string{"get", "badbin"}, []string{"missing arguments"}},
		{[]string{"drop", "badbin", "extra"}, []string{"too many arguments"}},
		{[]string{"family"}, []string{"missing subcommand"}},
		{[]string{"family", "rename", "badbin", "f"}, []string{`unknown subcommand "rename"`}},
		{[]string{"get", "nosuch", "r"}, []string{`"nosuch"`, "table not found"}},
		{[]string{"put", "nosuch", "r", "f:q", "v"}, []string{`"nosuch"`, "table not found"}},
		{[]string{"put", "badbin", "r", "nofam:q", "v"}, []string{"nofam"}},
		{[]string{"get", "badbin", "r", "--columns", "nofam"}, []string{`family "nofam" is not in table "badbin"`}},
		{[]string{"delete", "badbin", "r", "nofam:q"}, []string{`family "nofam" is not in table "badbin"`}},
		{[]string{"family", "delete", "badbin", "nofam"}, []string{"nofam"}},
		{[]string{"put", "badbin", "r", "fq", "v"}, []string{`malformed column "fq": want FAMILY:QUALIFIER`}},
		{[]string{"put", "badbin", "r", "f q:x", "v"}, []string{`malformed column "f q:x"`}},
		{[]string{"incr", "badbin", "r", "noqualifier"}, []string{"malformed column"}},
		{[]string{"create", "badbin2", "f:maxage=soon"}, []string{`maxage="soon"`, "positive duration"}},
		{[]string{"family", "add", "badbin", "g:maxage=10"}, []string{`maxage="10"`}},
		{[]string{"put", "badbin", "r", "f:q", "--value-file", big}, []string{"value is 10485761 bytes, over the limit of 10485760"}},
		{[]string{"put", "badbin", strings.Repeat("r", 70000), "f:q", "v"}, []string{"row key is 70000 bytes, over the limit of 65536"}},
		{[]string{"put", "badbin", "r", "f:q", "v", "--ts", "soon"}, []string{`invalid argument "soon" for "--ts"`}},
		{[]string{"get", "badbin", "r", "--versions", "-2"}, []string{"--versions -2"}},
		{[]string{"--cluster", "127.0.0.1:1", "ls"}, []string{"no cluster reachable at 127.0.0.1:1", "waited "}},
	} {
		binFails(t, "", tc.args, tc.want...)
	}
	if got := binOK(t, "scan", "badbin"); got != content {
		t.Errorf("after the bad inputs badbin holds %q, want %q", got, content)
	}
	if got := binOK(t, "ls"); strings.Contains(got, "badbin2") {
		t.Errorf("a failed create made a table: %q", got)
	}
	if got := binOK(t, "describe", "badbin"); strings.Contains(got, "\ng ") {
		t.Errorf("a failed family add made a family:\n%s", got)
	}
}

// TestImportBadLines checks that a malformed line stops an import with its
// line number, having written the lines before it and nothing after it;
// with --skip-bad the import goes on and reports how many were skipped.
func TestImportBadLines(t *testing.T) {
	binOK(t, "create", "badimport", "f")
	line := func(row string, ts int) string {
		return fmt.Sprintf(`{"row":%q,"family":"f","qualifier":"","timestamp":%d,"value":""}`, base64.StdEncoding.EncodeToString([]byte(row)), ts)
	}
	lines := []string{line("a", 1), line("b", 1), "", line("c", 1),
		`{"row":"ZA==","family":"f","qualifier":"","timestamp":1}`, // line 5: no value
		line("e", 1),
		`{"row":"Zg==","family":"nofam","qualifier":"","timestamp":1,"value":""}`, // line 7: unknown family
		line("g", 1)}
	input := strings.Join(lines, "\n") + "\n"
	binFails(t, input, []string{"import", "badimport", "-"}, `line 5: missing "value"`, "3 cells before it were imported")
	if got, want := binOK(t, "scan", "badimport"), "a f: @1 \"\"\nb f: @1 \"\"\nc f: @1 \"\"\n"; got != want {
		t.Errorf("after the failed import: %q, want %q", got, want)
	}
	r := runBin(t, input, "import", "badimport", "-", "--skip-bad")
	if r.code != 0 || r.stderr != "" || !strings.HasPrefix(r.stdout, "imported 5 cells; skipped 2 bad lines (first: line 5: ") {
		t.Errorf("import --skip-bad: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	if got := binOK(t, "count", "badimport"); got != "5\n" {
		t.Errorf("after import --skip-bad count = %q, want 5", got)
	}
	binFails(t, "", []string{"import", "badimport", filepath.Join(t.TempDir(), "missing.jsonl")}, "no such file")
	binFails(t, "", []string{"export", "nosuch", filepath.Join(t.TempDir(), "out")}, "table not found")
}

// TestClusterFromEnv: without --cluster the commands use CELLAR_CLUSTER,
// and --cluster wins over it.
func TestClusterFromEnv(t *testing.T) {
	bin := cellarBinary(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	env := []string{"HOME=" + t.TempDir(), "CELLAR_CLUSTER=" + cluster(t)}
	cmd := exec.CommandContext(ctx, bin, "ls")
	cmd.Env = env
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("ls with CELLAR_CLUSTER: %v: %s", err, out)
	}
	cmd = exec.CommandContext(ctx, bin, "ls", "--cluster", "127.0.0.1:1")
	cmd.Env = env
	if out, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(out), "no cluster reachable at 127.0.0.1:1") {
		t.Errorf("ls --cluster 127.0.0.1:1 with CELLAR_CLUSTER set: %v: %s", err, out)
	}
}
