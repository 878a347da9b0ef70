// Command cellar is Cellar's single binary: every server role, the admin
// commands and the benchmarks are subcommands. Run `cellar --help`.
//
// Flags fall back to CELLAR_* environment variables; this package is the only
// place in Cellar that reads either.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"cellar/internal/procs"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	root := newRootCmd()
	if err := root.ExecuteContext(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "cellar: "+oneLine(err))
		var ee *exitError
		if errors.As(err, &ee) {
			os.Exit(ee.code)
		}
		os.Exit(1)
	}
}

// exitError carries a specific exit status (for example fsck's "data
// missing").
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

func oneLine(err error) string {
	s := err.Error()
	for i := 0; i < len(s); i++ {
		if s[i] == '\n' {
			return s[:i]
		}
	}
	return s
}

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:           "cellar",
		Short:         "Cellar: a Bigtable-style distributed record store",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	bench := &cobra.Command{Use: "bench", Short: "Benchmarks of Cellar's components, side by side with peers"}
	for _, c := range benchCommands() {
		bench.AddCommand(raisesProcs(c))
	}
	root.AddCommand(bench)
	for _, c := range serverCommands() {
		switch c.Name() {
		case "dfs-master", "chunkserver", "lock", "master", "tabletserver", "standalone":
			c = raisesProcs(c)
		}
		root.AddCommand(c)
	}
	addClusterCommands(root)
	return root
}

// raisesProcs makes cmd, which runs servers (or benchmarks them in this
// process), lift GOMAXPROCS to procs.Floor before it starts: servers that
// block in fsync need more Ps than cores (see cellar/internal/procs). The
// GOMAXPROCS environment variable, when set, wins.
func raisesProcs(cmd *cobra.Command) *cobra.Command {
	pre := cmd.PreRunE
	cmd.PreRunE = func(c *cobra.Command, args []string) error {
		procs.Raise()
		if pre != nil {
			return pre(c, args)
		}
		return nil
	}
	return cmd
}

// benchCommands lists `cellar bench ...` subcommands; each lives in its own
// bench_*.go file.
func benchCommands() []*cobra.Command {
	return []*cobra.Command{
		benchDFSCmd(),
		benchEngineCmd(),
		benchLockCmd(),
		benchYCSBCmd(),
	}
}

// serverCommands lists the server roles and admin command groups; each lives
// in its own file.
func serverCommands() []*cobra.Command {
	return []*cobra.Command{
		dfsMasterCmd(),
		chunkserverCmd(),
		dfsCmd(),
		lockCmd(),
		masterCmd(),
		tabletServerCmd(),
		standaloneCmd(),
		checkCmd(),
		jobCmd(),
	}
}

// envDefault returns the CELLAR_<name> environment variable or def.
func envDefault(name, def string) string {
	if v, ok := os.LookupEnv("CELLAR_" + name); ok {
		return v
	}
	return def
}
