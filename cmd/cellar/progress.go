package main

import (
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
)

// progress is a progress bar on stderr for the long-running commands
// (count, import, export, compact --major). A nil *progress is a no-op, so
// commands call it unconditionally; the session creates one only when
// stdout and stderr are both terminals, so piped output stays clean.
type progress struct {
	bar *progressbar.ProgressBar
}

// newProgress returns a bar counting toward total units (-1: unknown, a
// spinner with a running count), or nil when progress is off.
func (s *session) newProgress(cmd *cobra.Command, what string, total int64) *progress {
	if !s.progress {
		return nil
	}
	return &progress{bar: progressbar.NewOptions64(total,
		progressbar.OptionSetWriter(cmd.ErrOrStderr()),
		progressbar.OptionSetDescription(what),
		progressbar.OptionShowCount(),
		progressbar.OptionShowIts(),
		progressbar.OptionSetItsString("cells"),
		progressbar.OptionSetElapsedTime(true),
		progressbar.OptionThrottle(100*time.Millisecond),
		progressbar.OptionSpinnerType(14),
		progressbar.OptionClearOnFinish(),
		progressbar.OptionSetRenderBlankState(true),
	)}
}

// units renames what the bar counts ("rows", "cells").
func (p *progress) units(name string) *progress {
	if p != nil {
		progressbar.OptionSetItsString(name)(p.bar)
	}
	return p
}

// Add counts n more units.
func (p *progress) Add(n int) {
	if p != nil {
		p.bar.Add(n)
	}
}

// Finish removes the bar (and stops its spinner goroutine).
func (p *progress) Finish() {
	if p != nil {
		p.bar.Finish()
	}
}

// wait runs fn, which reports no progress of its own; the bar's spinner
// (drawn by progressbar's own ticker) turns meanwhile.
func (p *progress) wait(fn func() error) error { return fn() }
