package master

import (
	"context"
	"errors"
	"fmt"
	"path"
	"strconv"
	"time"

	"cellar/dfs"
	"cellar/internal/metadata"
	"cellar/tablet"
)

// gcState is the bookkeeping of the SSTable garbage collector: what it
// found unreferenced, and since when. It lives in the term, so a new
// master starts every grace period over.
type gcState struct {
	last  time.Time
	files map[string]time.Time // SSTables no live tablet lists, first seen so
	dirs  map[string]time.Time // tablet directories no live tablet has, first seen so
	edits map[string]time.Time // recovered-edits directories of no live tablet, first seen so
}

// collectFiles deletes the SSTables that no live tablet references any
// more, and the directories of tablets that no longer exist, once they
// have been found so in every round for GCGracePeriod (docs/serving.md,
// "Garbage collection", has the argument for why no file a tablet may
// still load is deleted). A round runs every GCInterval, and only when
// every live server answered its status in this pass; any doubt (a
// manifest or a METADATA row that does not read) ends the round without
// deleting anything.
func (t *term) collectFiles(ctx context.Context) {
	t.mu.Lock()
	if !t.statusesComplete || time.Since(t.gc.last) < t.m.opts.GCInterval {
		t.mu.Unlock()
		return
	}
	t.gc.last = time.Now()
	if t.gc.files == nil {
		t.gc.files, t.gc.dirs, t.gc.edits = map[string]time.Time{}, map[string]time.Time{}, map[string]time.Time{}
	}
	// Live tablets, first from the state and the servers' statuses of
	// this pass.
	live := map[string]bool{}
	liveIDs := map[uint64]bool{}
	for id, ti := range t.tablets {
		live[ti.desc.Dir] = true
		liveIDs[id] = true
	}
	for _, s := range t.servers {
		if s.status == nil {
			continue
		}
		for _, ts := range s.status.Tablets {
			if ts.Tablet != nil {
				live[ts.Tablet.Dir] = true
				liveIDs[ts.Tablet.TabletId] = true
			}
		}
	}
	// METADATA's own directories too: a META split leaves its parent's
	// files to collect. The root's rows name every META tablet (read in
	// the round), and the root tablet is always live.
	live[metadata.RootTablet().Dir] = true
	liveIDs[metadata.RootTabletID] = true
	var tables []uint64
	for id := range t.schemas {
		tables = append(tables, id)
	}
	t.mu.Unlock()
	if err := t.gcRound(ctx, live, liveIDs, tables); err != nil && ctx.Err() == nil {
		t.m.log.Warn("SSTable garbage collection round abandoned; nothing deleted", "err", err)
	}
}

func (t *term) gcRound(ctx context.Context, live map[string]bool, liveIDs map[uint64]bool, tables []uint64) error {
	fs := t.m.opts.FS
	// Then from METADATA, read afresh (the root tablet's rows, then every
	// META tablet's): every row's tablet and the tablets every split and
	// merge intent names.
	readMeta := func() error {
		var bad error
		fn := func(key []byte, _ uint64, _ []byte, cells map[string][]byte) {
			for _, q := range []string{metadata.QualTablet, metadata.QualSplitting, metadata.QualMerge, metadata.QualMergeLeft} {
				b, ok := cells[q]
				if !ok {
					continue
				}
				d, err := metadata.DecodeTablet(b)
				if err != nil {
					bad = fmt.Errorf("METADATA row %x, cell %s: %w", key, q, err)
					continue
				}
				live[d.Dir] = true
				liveIDs[d.TabletId] = true
			}
		}
		err := t.readRootRows(ctx, fn)
		if err == nil {
			err = t.readUserRows(ctx, fn)
		}
		if err == nil {
			err = bad
		}
		return err
	}
	// What the live tablets' manifests reference. METADATA is read again
	// after the manifests: a tablet created from one of them after it was
	// read (a split or merge, whose intent precedes its directory) is in
	// METADATA by then, and its manifest is read too.
	referenced := map[string]bool{}
	floor := map[string]uint64{} // live dir → its split floor
	read := map[string]bool{}
	for attempt := 0; ; attempt++ {
		if err := readMeta(); err != nil {
			return err
		}
		fresh := 0
		for dir := range live {
			if read[dir] {
				continue
			}
			fresh++
			read[dir] = true
			info, err := tablet.ReadManifest(ctx, fs, dir)
			if err != nil {
				return err
			}
			if info == nil {
				continue // not opened yet: floor 0 protects its whole sst dir
			}
			for _, f := range info.Files {
				referenced[f] = true
			}
			floor[dir] = info.SplitFloor
		}
		if fresh == 0 {
			break
		}
		if attempt == 3 {
			return errors.New("tablets keep appearing in METADATA; trying again in the next round")
		}
	}
	now := time.Now()
	grace := t.m.opts.GCGracePeriod
	seenFiles := map[string]bool{}
	seenDirs := map[string]bool{}
	deleted, removedDirs := 0, 0
	for _, table := range tables {
		tdir := dfs.Join("tables", strconv.FormatUint(table, 10), "tablets")
		ents, err := fs.List(ctx, tdir)
		if err != nil {
			return fmt.Errorf("list %s: %w", tdir, err)
		}
		for _, e := range ents {
			if !e.IsDir {
				continue
			}
			dir := dfs.Join(tdir, path.Base(e.Name))
			isLive := live[dir]
			if !isLive {
				seenDirs[dir] = true
				if _, ok := t.gc.dirs[dir]; !ok {
					t.gc.dirs[dir] = now
				}
			}
			sst := tablet.SSTableDir(dir)
			files, err := fs.List(ctx, sst)
			if err != nil {
				return fmt.Errorf("list %s: %w", sst, err)
			}
			kept := 0
			for _, f := range files {
				name := dfs.Join(sst, path.Base(f.Name))
				num, ok := tablet.SSTableNumber(path.Base(f.Name))
				// In a live directory only the tables below the split
				// floor are the collector's: the tablet deletes its
				// own, and the others may be outputs not installed yet.
				if f.IsDir || !ok || referenced[name] || isLive && num >= floor[dir] {
					kept++
					continue
				}
				seenFiles[name] = true
				first, ok := t.gc.files[name]
				if !ok {
					t.gc.files[name] = now
					kept++
					continue
				}
				if now.Sub(first) < grace {
					kept++
					continue
				}
				if err := fs.Remove(ctx, name); err != nil && !errors.Is(err, dfs.ErrNotFound) {
					return fmt.Errorf("delete %s: %w", name, err)
				}
				delete(t.gc.files, name)
				deleted++
				t.m.log.Info("garbage-collected unreferenced SSTable", "file", name)
			}
			if first, ok := t.gc.dirs[dir]; !isLive && ok && kept == 0 && now.Sub(first) >= grace {
				if err := removeTree(ctx, fs, dir); err != nil {
					return fmt.Errorf("delete %s: %w", dir, err)
				}
				delete(t.gc.dirs, dir)
				removedDirs++
				t.m.log.Info("garbage-collected the directory of a tablet that no longer exists", "dir", dir)
			}
		}
	}
	// Recovered edits of tablets that no longer exist (merged away, or
	// of a dead server's log split after the merge).
	ents, err := fs.List(ctx, "recovered")
	if err != nil {
		return fmt.Errorf("list recovered edits: %w", err)
	}
	seenEdits := map[string]bool{}
	for _, e := range ents {
		id, perr := strconv.ParseUint(path.Base(e.Name), 10, 64)
		if !e.IsDir || perr != nil || liveIDs[id] || id == metadata.RootTabletID || id == metadata.MetaTabletID {
			continue
		}
		dir := recoveredRoot(id)
		seenEdits[dir] = true
		first, ok := t.gc.edits[dir]
		if !ok {
			t.gc.edits[dir] = now
			continue
		}
		if now.Sub(first) < grace {
			continue
		}
		if err := removeTree(ctx, fs, dir); err != nil {
			return fmt.Errorf("delete %s: %w", dir, err)
		}
		delete(t.gc.edits, dir)
		t.m.log.Info("garbage-collected the recovered edits of a tablet that no longer exists", "dir", dir)
	}
	for dir := range t.gc.edits {
		if !seenEdits[dir] {
			delete(t.gc.edits, dir)
		}
	}
	// Whatever was not found unreferenced this round starts over.
	for name := range t.gc.files {
		if !seenFiles[name] {
			delete(t.gc.files, name)
		}
	}
	for dir := range t.gc.dirs {
		if !seenDirs[dir] {
			delete(t.gc.dirs, dir)
		}
	}
	if deleted > 0 || removedDirs > 0 {
		t.m.log.Info("SSTable garbage collection round", "deleted_files", deleted, "deleted_dirs", removedDirs)
	}
	return nil
}
