package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/chzyer/readline"
	"github.com/google/shlex"
	"github.com/spf13/cobra"
	"golang.org/x/term"
)

// shellMaxLine bounds one line of a shell script read from standard input.
const shellMaxLine = 16 << 20

func shellCmd(s *session) *cobra.Command {
	return &cobra.Command{
		Use:   "shell",
		Short: "Interactive shell running the commands above (without the cellar prefix)",
		Long: `An interactive shell on one connection to the cluster: the same commands as
cellar's (ls, create, put, get, scan, ...) without the "cellar" prefix, with line
editing, history (~/.cellar_history) and TAB completion of command and table
names. Arguments are split as a POSIX shell would (quotes, backslashes; # starts
a comment). "help" lists the commands; "exit", "quit" or Ctrl-D leave; Ctrl-C
abandons the line being edited or interrupts the running command.

When standard input is not a terminal, the shell runs its lines in order, prints
each failure as one line on standard error and goes on; it exits with a non-zero
status if any command failed.`,
		Args: argsRange(0, 0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			s.keep = true
			defer s.Close()
			sh := &shell{s: s, out: cmd.OutOrStdout(), errw: cmd.ErrOrStderr()}
			in := cmd.InOrStdin()
			// Standard input belongs to the shell: `put --value-file -` and
			// `import T -` inside it cannot read it.
			s.stdin = shellStdin{}
			if f, ok := in.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
				return sh.interactive(cmd.Context(), f)
			}
			return sh.script(cmd.Context(), in)
		},
	}
}

type shellStdin struct{}

func (shellStdin) Read([]byte) (int, error) {
	return 0, usagef("standard input is the shell's own: give a file name instead of -")
}

// shell runs command lines on one session.
type shell struct {
	s         *session
	out, errw io.Writer
}

// newRoot builds a fresh command tree for one line, so that no flag value
// leaks from one line into the next.
func (sh *shell) newRoot() *cobra.Command {
	root := &cobra.Command{Use: "cellar", SilenceUsage: true, SilenceErrors: true}
	root.CompletionOptions.DisableDefaultCmd = true
	root.AddCommand(clusterCommands(sh.s)...)
	root.SetOut(sh.out)
	root.SetErr(sh.errw)
	root.SetIn(shellStdin{})
	return root
}

// run executes one line; quit reports exit or quit.
func (sh *shell) run(ctx context.Context, line string) (quit bool, err error) {
	args, err := shlex.Split(line)
	if err != nil {
		return false, usagef("cannot split line: %v", err)
	}
	if len(args) == 0 {
		return false, nil
	}
	switch args[0] {
	case "exit", "quit":
		if len(args) > 1 {
			return false, usagef("%s takes no arguments", args[0])
		}
		return true, nil
	case "help", "?":
		if len(args) == 1 {
			sh.help()
			return false, nil
		}
		args[0] = "help"
	}
	root := sh.newRoot()
	root.SetArgs(args)
	return false, root.ExecuteContext(ctx)
}

// help lists the commands.
func (sh *shell) help() {
	tw := tabwriter.NewWriter(sh.out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "Commands (\"help COMMAND\" for its flags):")
	for _, c := range sh.newRoot().Commands() {
		if c.IsAvailableCommand() {
			fmt.Fprintf(tw, "  %s\t%s\n", c.Name(), c.Short)
		}
	}
	fmt.Fprintf(tw, "  %s\t%s\n", "help", "List the commands")
	fmt.Fprintf(tw, "  %s\t%s\n", "exit, quit", "Leave the shell (or Ctrl-D)")
	tw.Flush()
}

// report prints a failed line's error as one line.
func (sh *shell) report(err error) {
	fmt.Fprintln(sh.errw, "cellar: "+oneLine(err))
}

// script runs the lines of r in order and fails at the end if any failed.
func (sh *shell) script(ctx context.Context, r io.Reader) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), shellMaxLine)
	var total, failed int
	for sc.Scan() {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		line := sc.Text()
		if strings.TrimSpace(line) == "" || strings.HasPrefix(strings.TrimSpace(line), "#") {
			continue
		}
		total++
		quit, err := sh.run(ctx, line)
		if err != nil {
			failed++
			sh.report(err)
		}
		if quit {
			break
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("shell: reading commands: %w", err)
	}
	if failed > 0 {
		return fmt.Errorf("shell: %d of %d commands failed", failed, total)
	}
	return nil
}

// interactive runs a readline loop on the terminal in.
func (sh *shell) interactive(ctx context.Context, in *os.File) error {
	cfg := &readline.Config{
		Prompt:          "cellar> ",
		AutoComplete:    &shellCompleter{sh: sh},
		InterruptPrompt: "^C",
		EOFPrompt:       "exit",
		Stdin:           in,
		Stdout:          sh.out,
		Stderr:          sh.errw,
		// A terminal that reports no width (a bare pty) would turn
		// readline's completion off.
		FuncGetWidth: func() int {
			if w := readline.GetScreenWidth(); w > 0 {
				return w
			}
			return 80
		},
	}
	if home, err := os.UserHomeDir(); err == nil {
		cfg.HistoryFile = filepath.Join(home, ".cellar_history")
	}
	rl, err := readline.NewEx(cfg)
	if err != nil {
		return fmt.Errorf("shell: %w", err)
	}
	defer rl.Close()
	fmt.Fprintf(sh.out, "Cellar shell on %s. Type help for the commands, exit or Ctrl-D to leave.\n", sh.s.cluster)
	// A Ctrl-C while a command runs interrupts that command, not the shell.
	base := context.WithoutCancel(ctx)
	for {
		line, err := rl.Readline()
		if errors.Is(err, readline.ErrInterrupt) {
			continue
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("shell: %w", err)
		}
		lctx, cancel := context.WithCancel(base)
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, os.Interrupt)
		go func() {
			select {
			case <-sig:
				cancel()
			case <-lctx.Done():
			}
		}()
		quit, err := sh.run(lctx, line)
		signal.Stop(sig)
		cancel()
		if err != nil {
			sh.report(err)
		}
		if quit {
			return nil
		}
	}
}

// shellCompleter completes command names (first word, and the subcommand
// of family) and table names (where a command's usage says TABLE).
type shellCompleter struct {
	sh *shell
	// tables lists the tables (a test replaces it).
	tables func() []string
}

// Do implements readline.AutoCompleter: candidates are the suffixes of the
// matching names after the word being typed, which is length runes long.
func (c *shellCompleter) Do(line []rune, pos int) (newLine [][]rune, length int) {
	before := string(line[:pos])
	words := strings.Fields(before)
	word := ""
	if len(words) > 0 && !strings.HasSuffix(before, " ") {
		word = words[len(words)-1]
		words = words[:len(words)-1]
	}
	var names []string
	root := c.sh.newRoot()
	if len(words) == 0 {
		for _, cmd := range root.Commands() {
			names = append(names, cmd.Name())
		}
		names = append(names, "help", "exit", "quit")
	} else {
		cmd, rest, err := root.Find(words)
		switch {
		case err != nil || cmd == root:
		case cmd.HasSubCommands() && len(rest) == 0:
			for _, sub := range cmd.Commands() {
				names = append(names, sub.Name())
			}
		case takesTable(cmd) && len(rest) == 0:
			names = c.tableNames()
		}
	}
	slices.Sort(names)
	for _, n := range slices.Compact(names) {
		if strings.HasPrefix(n, word) {
			newLine = append(newLine, []rune(n[len(word):]+" "))
		}
	}
	return newLine, len([]rune(word))
}

// takesTable reports whether cmd's first argument is a table name.
func takesTable(cmd *cobra.Command) bool {
	f := strings.Fields(cmd.Use)
	return len(f) > 1 && f[1] == "TABLE"
}

func (c *shellCompleter) tableNames() []string {
	if c.tables != nil {
		return c.tables()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	cl, err := c.sh.s.client(ctx)
	if err != nil {
		return nil
	}
	names, err := cl.Admin().Tables(ctx)
	if err != nil {
		return nil
	}
	return names
}
