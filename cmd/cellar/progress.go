package main

import (
	"io"
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

// newProgress returns a spinner with the elapsed time and, if units is
// not empty, a running count of units and their rate; nil when progress is
// off.
func (s *session) newProgress(cmd *cobra.Command, what, units string) *progress {
	if !s.progress {
		return nil
	}
	opts := []progressbar.Option{
		progressbar.OptionSetWriter(cmd.ErrOrStderr()),
		progressbar.OptionSetDescription(what),
		progressbar.OptionSetElapsedTime(true),
		progressbar.OptionThrottle(100 * time.Millisecond),
		progressbar.OptionSpinnerType(14),
		progressbar.OptionClearOnFinish(),
		progressbar.OptionSetRenderBlankState(true),
	}
	if units != "" {
		opts = append(opts, progressbar.OptionShowCount(), progressbar.OptionShowIts(), progressbar.OptionSetItsString(units))
	}
	return &progress{bar: progressbar.NewOptions64(-1, opts...)}
}

// newBytesProgress returns a bar of total bytes (as read through reader),
// or nil when progress is off.
func (s *session) newBytesProgress(cmd *cobra.Command, what string, total int64) *progress {
	if !s.progress {
		return nil
	}
	return &progress{bar: progressbar.NewOptions64(total,
		progressbar.OptionSetWriter(cmd.ErrOrStderr()),
		progressbar.OptionSetDescription(what),
		progressbar.OptionShowBytes(true),
		progressbar.OptionSetWidth(30),
		progressbar.OptionThrottle(100*time.Millisecond),
		progressbar.OptionClearOnFinish(),
		progressbar.OptionSetRenderBlankState(true),
	)}
}

// reader counts the bytes read from r on the bar.
func (p *progress) reader(r io.Reader) io.Reader {
	if p == nil {
		return r
	}
	pr := progressbar.NewReader(r, p.bar)
	return &pr
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
