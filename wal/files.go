package wal

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"cellar/dfs"
	"cellar/internal/keys"
)

// FileInfo describes one log file.
type FileInfo struct {
	Name string // full name in the FS, e.g. "log/0000000000000003.log"
	Num  uint64 // the file number
	// MaxSeq is, per tablet, the largest sequence number of an entry in
	// the file. The map belongs to the caller.
	MaxSeq map[uint64]keys.SeqNum
	Size   int64 // bytes written (for the live file: so far)
}

func (fi FileInfo) clone() FileInfo {
	m := make(map[uint64]keys.SeqNum, len(fi.MaxSeq))
	for k, v := range fi.MaxSeq {
		m[k] = v
	}
	fi.MaxSeq = m
	return fi
}

// fileSuffix ends every log file name. Part of the format; never change.
const fileSuffix = ".log"

// fileName is the base name of log file num: zero-padded so that names
// sort by number.
func fileName(num uint64) string { return fmt.Sprintf("%016d%s", num, fileSuffix) }

// parseFileName returns the number of a log file's base name.
func parseFileName(base string) (uint64, bool) {
	digits, ok := strings.CutSuffix(base, fileSuffix)
	if !ok || len(digits) != 16 {
		return 0, false
	}
	for _, c := range digits {
		if c < '0' || c > '9' {
			return 0, false
		}
	}
	n, err := strconv.ParseUint(digits, 10, 64)
	return n, err == nil
}

// listFiles returns the log files in dir ordered by number; other entries
// are ignored.
func listFiles(ctx context.Context, fs dfs.FS, dir string) ([]FileInfo, error) {
	ents, err := fs.List(ctx, dir)
	if err != nil {
		return nil, fmt.Errorf("cellar/wal: list %q: %w", dir, err)
	}
	var out []FileInfo
	for _, e := range ents {
		if e.IsDir {
			continue
		}
		if num, ok := parseFileName(e.Name); ok {
			out = append(out, FileInfo{Name: dfs.Join(dir, e.Name), Num: num, Size: e.Size})
		}
	}
	// List sorts by name, and equal-length zero-padded names sort by number.
	return out, nil
}
