package wal

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"

	"cellar/dfs"
)

// ReplayOptions configure Replay. A nil *ReplayOptions means the defaults.
type ReplayOptions struct {
	// SkipCorrupt skips corrupt records in the middle of the log (counted
	// in ReplayStats.SkippedCorrupt) instead of failing with ErrCorrupt.
	SkipCorrupt bool
	// Logger receives a warning per torn tail or skipped corruption; nil =
	// slog.Default().
	Logger *slog.Logger
}

// ReplayStats counts what Replay read.
type ReplayStats struct {
	Files          int  // log files read
	Entries        int  // entries passed to fn
	SkippedCorrupt int  // corrupt spots skipped (SkipCorrupt)
	TornTail       bool // some file ended in a torn or corrupt tail, which was dropped
}

// Replay calls fn with every entry of every log file in dir, in file order
// and, within a file, in the order the entries were appended. Entry.Data is
// valid only during the call; fn copies it to keep it. An error from fn
// stops Replay and is returned wrapped.
//
// A torn or corrupt tail (damage after which nothing valid follows in the
// file) of the last file, or of a file that was never sealed (the live
// file of a Log that crashed, followed by the files of later Logs), ends
// that file cleanly and sets TornTail. Any other damage is an error wrapping
// ErrCorrupt (a *CorruptError naming the file and offset), unless
// SkipCorrupt is set. See doc.go for how the two are told apart.
//
// Replay must not run on a dir that a Log is writing.
func Replay(ctx context.Context, fs dfs.FS, dir string, opts *ReplayOptions, fn func(e Entry) error) (ReplayStats, error) {
	var o ReplayOptions
	if opts != nil {
		o = *opts
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	var stats ReplayStats
	files, err := listFiles(ctx, fs, dir)
	if err != nil {
		return stats, err
	}
	for i, fi := range files {
		if err := ctx.Err(); err != nil {
			return stats, err
		}
		st, err := readFile(ctx, fs, fi, i == len(files)-1, o, fn)
		stats.Files++
		stats.Entries += st.entries
		stats.SkippedCorrupt += st.skipped
		stats.TornTail = stats.TornTail || st.torn
		if err != nil {
			return stats, err
		}
	}
	return stats, nil
}

type fileStats struct {
	entries, skipped int
	torn             bool
}

// readFile passes the entries of one log file to fn. tailOK says the file
// is the last one, whose corrupt tail is always tolerated.
func readFile(ctx context.Context, fs dfs.FS, fi FileInfo, tailOK bool, o ReplayOptions, fn func(Entry) error) (fileStats, error) {
	var st fileStats
	f, err := fs.Open(ctx, fi.Name)
	if err != nil {
		return st, fmt.Errorf("cellar/wal: open %s: %w", fi.Name, err)
	}
	defer f.Close()
	if !tailOK {
		sealed, err := isSealed(f, fi.Num)
		if err != nil {
			return st, fmt.Errorf("cellar/wal: %s: %w", fi.Name, err)
		}
		tailOK = !sealed
	}
	r := newRecordReader(f, fi.Name, fi.Num)
	for {
		if st.entries%256 == 0 {
			if err := ctx.Err(); err != nil {
				return st, err
			}
		}
		rec, off, err := r.next()
		if err == nil {
			e, reason := decodeEntry(rec)
			if reason == "" {
				if err := fn(e); err != nil {
					return st, fmt.Errorf("cellar/wal: replay %s at offset %d: %w", fi.Name, off, err)
				}
				st.entries++
				continue
			}
			err = &CorruptError{File: fi.Name, Offset: off, Reason: "entry: " + reason}
		}
		if err == io.EOF {
			return st, nil
		}
		var ce *CorruptError
		if !errors.As(err, &ce) {
			return st, err
		}
		more, rerr := r.recover()
		if rerr != nil {
			return st, rerr
		}
		if !more && tailOK {
			st.torn = true
			o.Logger.Warn("wal: dropping torn log tail", "file", fi.Name, "offset", ce.Offset, "reason", ce.Reason)
			return st, nil
		}
		if !o.SkipCorrupt {
			return st, err
		}
		st.skipped++
		o.Logger.Warn("wal: skipping corrupt log data", "file", fi.Name, "offset", ce.Offset, "reason", ce.Reason)
		if !more {
			return st, nil
		}
	}
}
