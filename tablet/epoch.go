package tablet

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"

	"cellar/dfs"
)

// Epochs fence a tablet's directory (see the format comment in manifest.go):
// every Open takes a new epoch by creating CLAIM-<e> exclusively, and writes
// its manifests to MANIFEST-<e>. Readers take the manifest of the highest
// epoch, so a server that lost the tablet (paused past its lock session)
// and resumes writing its own epoch's manifest is ignored; before deleting
// anything it checks that no higher epoch exists.

const (
	// legacyManifestName is the manifest of epoch 0: the only name written
	// before epochs, still read (and replaced by the first Open).
	legacyManifestName = "MANIFEST"
	manifestPrefix     = "MANIFEST-"
	claimPrefix        = "CLAIM-"
	tmpSuffix          = ".tmp"
	// firstEpoch is the epoch of the manifest Split and Merge write into a
	// brand-new directory; the tablet's first Open claims the next one.
	firstEpoch = 1
	// maxEpoch bounds parsed epochs, so that highest+1 never overflows.
	maxEpoch = math.MaxInt64
	// maxClaimAttempts bounds Open's retries when other openers of the
	// same directory keep winning the exclusive Create.
	maxClaimAttempts = 8
	// maxManifestReadAttempts bounds retries of a manifest read whose file
	// a newer epoch's Open removed between List and Open.
	maxManifestReadAttempts = 8
)

// manifestFileName is the base name of epoch e's manifest.
func manifestFileName(e uint64) string {
	if e == 0 {
		return legacyManifestName
	}
	return manifestPrefix + strconv.FormatUint(e, 10)
}

func claimFileName(e uint64) string { return claimPrefix + strconv.FormatUint(e, 10) }

// parseEpoch parses the decimal epoch of a manifest or claim name: digits
// only, no sign, no leading zero, 1 to maxEpoch (0 is the legacy name's,
// which has no number). Strict, so that every epoch has one name.
func parseEpoch(digits string) (uint64, bool) {
	if digits == "" || len(digits) > 19 || digits[0] == '0' {
		return 0, false
	}
	for i := 0; i < len(digits); i++ {
		if digits[i] < '0' || digits[i] > '9' {
			return 0, false
		}
	}
	e, err := strconv.ParseUint(digits, 10, 64)
	if err != nil || e > maxEpoch {
		return 0, false
	}
	return e, true
}

// epochFile says what a base name in a tablet directory is.
type epochFile struct {
	epoch uint64
	claim bool // CLAIM-<e>; else a manifest (MANIFEST-<e> or MANIFEST)
	tmp   bool // a manifest being written (<manifest name>.tmp)
}

// parseEpochName parses a manifest, claim or temporary manifest name;
// false for any other name.
func parseEpochName(base string) (epochFile, bool) {
	if base == legacyManifestName {
		return epochFile{}, true
	}
	if base == legacyManifestName+tmpSuffix {
		return epochFile{tmp: true}, true
	}
	if digits, ok := strings.CutPrefix(base, claimPrefix); ok {
		e, ok := parseEpoch(digits)
		return epochFile{epoch: e, claim: true}, ok
	}
	digits, ok := strings.CutPrefix(base, manifestPrefix)
	if !ok {
		return epochFile{}, false
	}
	digits, tmp := strings.CutSuffix(digits, tmpSuffix)
	e, ok := parseEpoch(digits)
	return epochFile{epoch: e, tmp: tmp}, ok
}

// dirEpochs is what a listing of a tablet directory says about epochs.
type dirEpochs struct {
	// highest is the highest epoch of a claim or a (complete) manifest.
	highest uint64
	// manifests are the epochs with a manifest, ascending (0 = legacy).
	manifests []uint64
	// names maps every epoch-named base name (temporaries too) to it.
	names map[string]epochFile
}

func listEpochs(ctx context.Context, fs dfs.FS, dir string) (dirEpochs, error) {
	ents, err := fs.List(ctx, dir)
	if err != nil {
		return dirEpochs{}, fmt.Errorf("cellar/tablet: list %s: %w", dir, err)
	}
	d := dirEpochs{names: map[string]epochFile{}}
	for _, e := range ents { // List sorts by name, not by epoch
		ef, ok := parseEpochName(e.Name)
		if e.IsDir || !ok {
			continue
		}
		d.names[e.Name] = ef
		if ef.tmp {
			continue
		}
		d.highest = max(d.highest, ef.epoch)
		if !ef.claim {
			d.manifests = append(d.manifests, ef.epoch)
		}
	}
	slices.Sort(d.manifests)
	return d, nil
}

// readManifest loads the manifest of the highest epoch in dir; (nil, nil)
// when there is none.
func readManifest(ctx context.Context, fs dfs.FS, dir string) (*manifest, error) {
	m, _, err := readManifestBelow(ctx, fs, dir, math.MaxUint64)
	return m, err
}

// readManifestBelow loads the manifest of the highest epoch below `below`
// in dir and returns it with its epoch; (nil, 0, nil) when there is none.
// A newer epoch's Open removes older manifests, so one listed may be gone
// when opened: then the listing is retried.
func readManifestBelow(ctx context.Context, fs dfs.FS, dir string, below uint64) (*manifest, uint64, error) {
	for attempt := 0; ; attempt++ {
		d, err := listEpochs(ctx, fs, dir)
		if err != nil {
			return nil, 0, err
		}
		i := len(d.manifests) - 1
		for i >= 0 && d.manifests[i] >= below {
			i--
		}
		if i < 0 {
			return nil, 0, nil
		}
		e := d.manifests[i]
		m, err := readManifestFile(ctx, fs, dfs.Join(dir, manifestFileName(e)))
		if errors.Is(err, dfs.ErrNotFound) && attempt+1 < maxManifestReadAttempts {
			continue
		}
		return m, e, err
	}
}

func readManifestFile(ctx context.Context, fs dfs.FS, name string) (*manifest, error) {
	f, err := fs.Open(ctx, name)
	if err != nil {
		return nil, fmt.Errorf("cellar/tablet: open %s: %w", name, err)
	}
	defer f.Close()
	if f.Size() > maxManifestSize {
		return nil, fmt.Errorf("%w: %s is %d bytes", ErrCorrupt, name, f.Size())
	}
	b := make([]byte, f.Size())
	if _, err := f.ReadAt(b, 0); err != nil && !(errors.Is(err, io.EOF) && len(b) == 0) {
		return nil, fmt.Errorf("cellar/tablet: read %s: %w", name, err)
	}
	m, err := decodeManifest(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return m, nil
}

// writeManifest makes m the durable state of dir under epoch e: write
// MANIFEST-<e>.tmp, sync it, rename it over MANIFEST-<e>. Callers
// serialize calls per dir and epoch. Whether m is the directory's state
// depends on no higher epoch existing: see Tablet.checkFence.
func writeManifest(ctx context.Context, fs dfs.FS, dir string, e uint64, m *manifest) error {
	final := dfs.Join(dir, manifestFileName(e))
	tmp := final + tmpSuffix
	if err := fs.Remove(ctx, tmp); err != nil && !errors.Is(err, dfs.ErrNotFound) {
		return fmt.Errorf("cellar/tablet: remove stale %s: %w", tmp, err)
	}
	f, err := fs.Create(ctx, tmp)
	if err != nil {
		return fmt.Errorf("cellar/tablet: create %s: %w", tmp, err)
	}
	if _, err := f.Write(m.encode()); err != nil {
		f.Close()
		return fmt.Errorf("cellar/tablet: write %s: %w", tmp, err)
	}
	if err := f.Sync(ctx); err != nil {
		f.Close()
		return fmt.Errorf("cellar/tablet: sync %s: %w", tmp, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("cellar/tablet: close %s: %w", tmp, err)
	}
	if err := fs.Rename(ctx, tmp, final); err != nil {
		// On a remote file system (the dfs) a failed or cancelled rename
		// may still have happened: the new manifest may be the live one.
		return fmt.Errorf("cellar/tablet: rename %s: %w: %w", tmp, errManifestOutcomeUnknown, err)
	}
	return nil
}

// errManifestOutcomeUnknown marks a manifest write whose final rename
// failed: the new manifest may or may not be in place, so the files it
// lists must not be deleted. Open's orphan cleanup removes them later if
// they turn out unreferenced.
var errManifestOutcomeUnknown = errors.New("cellar/tablet: manifest install outcome unknown")

// claimEpoch takes a new epoch in dir: one above the highest claim or
// manifest there, by creating its CLAIM file exclusively (the file
// system's namespace decides between racing openers). The claim is
// checked to be the highest afterwards: an opener that listed before
// others claimed and cleaned up could otherwise take a number below
// theirs.
func claimEpoch(ctx context.Context, fs dfs.FS, dir string) (uint64, error) {
	for attempt := 0; attempt < maxClaimAttempts; attempt++ {
		d, err := listEpochs(ctx, fs, dir)
		if err != nil {
			return 0, err
		}
		if d.highest >= maxEpoch {
			return 0, fmt.Errorf("%w: %s: epochs exhausted", ErrCorrupt, dir)
		}
		e := d.highest + 1
		name := dfs.Join(dir, claimFileName(e))
		f, err := fs.Create(ctx, name)
		if errors.Is(err, dfs.ErrExist) {
			continue // another opener took e: look again
		}
		if err != nil {
			return 0, fmt.Errorf("cellar/tablet: claim %s: %w", name, err)
		}
		// Close syncs: the claim is durable (Create made its name so).
		if err := f.Close(); err != nil {
			return 0, fmt.Errorf("cellar/tablet: claim %s: %w", name, err)
		}
		if d, err = listEpochs(ctx, fs, dir); err != nil {
			return 0, err
		}
		if d.highest > e {
			// Lost to a newer opener: the stale claim fences nobody
			// (everyone checks for epochs above their own), so it is
			// only tidied up.
			_ = fs.Remove(ctx, name)
			continue
		}
		return e, nil
	}
	return 0, fmt.Errorf("cellar/tablet: open %s: %w: other servers kept opening the tablet (%d attempts to claim an epoch)",
		dir, ErrFenced, maxClaimAttempts)
}

// higherEpoch returns an epoch above mine with a claim or a manifest in
// dir, or 0 if there is none.
func higherEpoch(ctx context.Context, fs dfs.FS, dir string, mine uint64) (uint64, error) {
	d, err := listEpochs(ctx, fs, dir)
	if err != nil {
		return 0, err
	}
	if d.highest > mine {
		return d.highest, nil
	}
	return 0, nil
}
