package master

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"cellar/dfs"
	"cellar/wal"
)

// RecoveredDir is where the edits of tablet recovered from a dead server's
// log go: one wal directory per (tablet, dead server). It depends only on
// the ids, so a dead server's log can be split before METADATA (which may
// have been on that server) is readable again.
func RecoveredDir(tablet uint64, server string) string {
	return dfs.Join(recoveredRoot(tablet), server)
}

func recoveredRoot(tablet uint64) string {
	return dfs.Join("recovered", strconv.FormatUint(tablet, 10))
}

// recoverServer splits a dead server's commit log by tablet and deletes it
// (Bigtable §5.2 and §5.3, "Commit-log implementation").
func (t *term) recoverServer(ctx context.Context, id string) error {
	start := time.Now()
	fs := t.m.opts.FS
	dir := dfs.Join(serversRoot, id, "log")
	files, err := fs.List(ctx, dir)
	if err != nil {
		return fmt.Errorf("list %s: %w", dir, err)
	}
	// End the dead server's leases first: after this, nothing it might
	// still try to write reaches its log, and every file has its final
	// length.
	if lr, ok := fs.(dfs.LeaseRecoverer); ok {
		var wg sync.WaitGroup
		errs := make([]error, len(files))
		for i, f := range files {
			if f.IsDir {
				continue
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs[i] = lr.RecoverLease(ctx, dfs.Join(dir, f.Name))
			}()
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			return fmt.Errorf("recover leases: %w", err)
		}
	}
	if h := t.m.opts.Hooks.AfterLeaseRecovery; h != nil {
		h(ctx, id)
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	writers := map[uint64]*wal.Log{}
	closeAll := func() error {
		var errs []error
		for _, w := range writers {
			errs = append(errs, w.Close())
		}
		return errors.Join(errs...)
	}
	stats, err := wal.Replay(ctx, fs, dir, &wal.ReplayOptions{Logger: t.m.log}, func(e wal.Entry) error {
		w := writers[e.Tablet]
		if w == nil {
			rd := RecoveredDir(e.Tablet, id)
			if err := removeTree(ctx, fs, rd); err != nil {
				return err
			}
			var err error
			if w, err = wal.Open(ctx, fs, &wal.Options{Dir: rd, Logger: t.m.log}); err != nil {
				return err
			}
			writers[e.Tablet] = w
		}
		e.Data = append([]byte(nil), e.Data...)
		// Each tablet's writer writes in the background: the split runs
		// in parallel across tablets; Close below waits for durability.
		return w.Append(ctx, e, false)
	})
	if cerr := closeAll(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("split log %s: %w", dir, err)
	}
	if err := removeTree(ctx, fs, dfs.Join(serversRoot, id)); err != nil {
		return fmt.Errorf("delete split log: %w", err)
	}
	t.m.log.Info("recovered dead tablet server's log", "server", id, "files", stats.Files, "entries", stats.Entries,
		"tablets", len(writers), "torn_tail", stats.TornTail, "took", time.Since(start).Round(time.Millisecond))
	if t.m.onRecovered != nil {
		t.m.onRecovered(id, len(writers), time.Since(start))
	}
	return nil
}

// removeTree deletes a directory and everything under it; a missing one
// is not an error.
func removeTree(ctx context.Context, fs dfs.FS, dir string) error {
	ents, err := fs.List(ctx, dir)
	if err != nil {
		return err
	}
	for _, e := range ents {
		name := dfs.Join(dir, e.Name)
		if e.IsDir {
			err = removeTree(ctx, fs, name)
		} else {
			err = fs.Remove(ctx, name)
		}
		if err != nil && !errors.Is(err, dfs.ErrNotFound) {
			return err
		}
	}
	if err := fs.Remove(ctx, dir); err != nil && !errors.Is(err, dfs.ErrNotFound) {
		return err
	}
	return nil
}
