package main

import (
	"bytes"
	"slices"
	"strings"
	"testing"
)

// TestShellCompleter checks completion of command names, family's
// subcommands and table names where a command takes a TABLE.
func TestShellCompleter(t *testing.T) {
	sh := &shell{s: newSession(), out: &bytes.Buffer{}, errw: &bytes.Buffer{}}
	c := &shellCompleter{sh: sh, tables: func() []string { return []string{"webtable", "weather", "users"} }}
	for _, tc := range []struct {
		line string
		want []string
	}{
		{"", nil}, // checked below: every command
		{"de", []string{"lete ", "scribe "}},
		{"ex", []string{"it ", "port "}},
		{"get we", []string{"ather ", "btable "}},
		{"scan ", []string{"users ", "weather ", "webtable "}},
		{"family ", []string{"add ", "delete ", "set "}},
		{"family add u", []string{"sers "}},
		{"get webtable ", nil}, // a row: nothing to offer
		{"ls ", nil},
		{"nosuch ", nil},
	} {
		got, n := c.Do([]rune(tc.line), len([]rune(tc.line)))
		var s []string
		for _, r := range got {
			s = append(s, string(r))
		}
		if tc.line == "" {
			for _, w := range []string{"ls ", "create ", "scan ", "import ", "help ", "exit ", "quit "} {
				if !slices.Contains(s, w) {
					t.Errorf("completing \"\": %q lacks %q", s, w)
				}
			}
			continue
		}
		word := tc.line[strings.LastIndex(tc.line, " ")+1:]
		if !slices.Equal(s, tc.want) || n != len(word) {
			t.Errorf("completing %q = %q, %d; want %q, %d", tc.line, s, n, tc.want, len(word))
		}
	}
}

// TestShellScriptInProcess runs a script through the shell command in
// process: flags do not leak from one line into the next, and standard
// input, being the shell's, cannot be read by a command.
func TestShellScriptInProcess(t *testing.T) {
	ok(t, "create", "shellproc", "f")
	script := strings.Join([]string{
		"put shellproc r f:q v1 --ts 1",
		"put shellproc r f:q v2 --ts 2",
		"get shellproc r --versions 1",
		"get shellproc r", // --versions must not carry over
		"put shellproc r f:q --value-file -",
		"'unterminated",
	}, "\n")
	out, errOut, err := cli(t, script, "shell")
	if want := "r f:q @2 v2\nr f:q @2 v2\nr f:q @1 v1\n"; out != want {
		t.Errorf("shell stdout %q, want %q", out, want)
	}
	lines := strings.Split(strings.TrimSuffix(errOut, "\n"), "\n")
	if len(lines) != 2 || !strings.Contains(lines[0], "standard input is the shell's own") || !strings.Contains(lines[1], "cannot split line") {
		t.Errorf("shell stderr %q", errOut)
	}
	if err == nil || !strings.Contains(err.Error(), "2 of 6 commands failed") {
		t.Errorf("shell error = %v", err)
	}
	// Exit stops the script with the status so far.
	if _, _, err := cli(t, "ls\nquit\nfrobnicate\n", "shell"); err != nil {
		t.Errorf("a script ending at quit before a bad line: %v", err)
	}
	if _, _, err := cli(t, "exit now\n", "shell"); err == nil {
		t.Error("exit with an argument was accepted")
	}
}
