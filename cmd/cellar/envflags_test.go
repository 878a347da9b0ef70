package main

import (
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// TestRoleFlagsHaveEnv: every flag of every server role falls back to a
// CELLAR_* variable and its help names it.
func TestRoleFlagsHaveEnv(t *testing.T) {
	for _, cmd := range []*cobra.Command{lockCmd(), dfsMasterCmd(), chunkserverCmd(), masterCmd(), tabletServerCmd(), standaloneCmd()} {
		if cmd.PreRunE == nil {
			t.Errorf("cellar %s: no PreRunE applying the environment", cmd.Name())
		}
		cmd.Flags().VisitAll(func(f *pflag.Flag) {
			if f.Name == "help" {
				return
			}
			env := f.Annotations[envAnnotation]
			if len(env) != 1 || !strings.HasPrefix(env[0], "CELLAR_") || !strings.Contains(f.Usage, "(env "+env[0]+")") {
				t.Errorf("cellar %s --%s: env %v, help %q: want a CELLAR_* variable named in the help", cmd.Name(), f.Name, env, f.Usage)
			}
		})
	}
}

// TestApplyEnv: a flag given on the command line wins over its variable,
// the variable wins over the default, and a malformed value is an error
// naming the variable.
func TestApplyEnv(t *testing.T) {
	var d time.Duration
	var s, u string
	cmd := &cobra.Command{Use: "x", RunE: func(*cobra.Command, []string) error { return nil }}
	cmd.Flags().DurationVar(&d, "d", time.Second, "a duration")
	cmd.Flags().StringVar(&s, "s", "def", "a string")
	cmd.Flags().StringVar(&u, "u", "def", "another string")
	envFlags(cmd.Flags(), map[string]string{"d": "TEST_D", "s": "TEST_S", "u": "TEST_U"})
	t.Setenv("CELLAR_TEST_D", "3s")
	t.Setenv("CELLAR_TEST_S", "from-env")
	if err := cmd.ParseFlags([]string{"--s", "from-flag"}); err != nil {
		t.Fatal(err)
	}
	if err := applyEnv(cmd, nil); err != nil {
		t.Fatal(err)
	}
	if d != 3*time.Second || s != "from-flag" || u != "def" {
		t.Errorf("d, s, u = %v, %q, %q; want 3s (env), from-flag (flag), def (default)", d, s, u)
	}
	t.Setenv("CELLAR_TEST_D", "soon")
	cmd.Flags().Lookup("d").Changed = false
	if err := applyEnv(cmd, nil); err == nil || !strings.Contains(err.Error(), "CELLAR_TEST_D") {
		t.Errorf("malformed CELLAR_TEST_D: err = %v, want an error naming it", err)
	}
}
