package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// The server roles' flags fall back to CELLAR_* environment variables:
// envFlags names each flag's variable (and says so in its help), and
// applyEnv, run before the command, sets every flag not given on the
// command line from its variable, so a malformed value is an error naming
// the variable rather than a silent default.

const envAnnotation = "cellar_env"

// envFlags binds flag name → variable (without the CELLAR_ prefix) on fs.
func envFlags(fs *pflag.FlagSet, names map[string]string) {
	for flag, env := range names {
		f := fs.Lookup(flag)
		if f == nil {
			panic("envFlags: no flag --" + flag) // a programming error in this package
		}
		f.Usage += " (env CELLAR_" + env + ")"
		if f.Annotations == nil {
			f.Annotations = map[string][]string{}
		}
		f.Annotations[envAnnotation] = []string{"CELLAR_" + env}
	}
}

// applyEnv sets the command's flags that were not given from their
// environment variables.
func applyEnv(cmd *cobra.Command, _ []string) error {
	var err error
	cmd.Flags().VisitAll(func(f *pflag.Flag) {
		names := f.Annotations[envAnnotation]
		if err != nil || f.Changed || len(names) == 0 {
			return
		}
		v, ok := os.LookupEnv(names[0])
		if !ok {
			return
		}
		if serr := f.Value.Set(v); serr != nil {
			err = fmt.Errorf("%s=%q (for --%s): %w", names[0], v, f.Name, serr)
		}
	})
	return err
}
