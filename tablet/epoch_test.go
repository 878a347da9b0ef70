package tablet

import (
	"context"
	"errors"
	"sync"
	"testing"

	"cellar/dfs/memfs"
)

// TestClaimEpochRace: claims racing on one directory all get distinct
// epochs (or fail with ErrFenced), and the winner of each number is the
// only one.
func TestClaimEpochRace(t *testing.T) {
	ctx := context.Background()
	fs := memfs.New()
	const n = 8
	epochs := make([]uint64, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			epochs[i], errs[i] = claimEpoch(ctx, fs, "d")
		}()
	}
	close(start)
	wg.Wait()
	seen := map[uint64]bool{}
	for i := range epochs {
		if errs[i] != nil {
			if !errors.Is(errs[i], ErrFenced) {
				t.Fatalf("claimEpoch = %v, want success or ErrFenced", errs[i])
			}
			continue
		}
		if seen[epochs[i]] {
			t.Fatalf("epoch %d claimed twice (%v)", epochs[i], epochs)
		}
		seen[epochs[i]] = true
	}
	if len(seen) == 0 {
		t.Fatal("no claim succeeded")
	}
}

// TestLegacyManifestIsEpochZero: the manifest of a directory written
// before epochs is read as epoch 0, below every MANIFEST-<e>.
func TestLegacyManifestIsEpochZero(t *testing.T) {
	ctx := context.Background()
	fs := memfs.New()
	m := testManifest()
	if err := writeManifest(ctx, fs, "t", 0, m); err != nil {
		t.Fatal(err)
	}
	ents, _ := fs.List(ctx, "t")
	if len(ents) != 1 || ents[0].Name != legacyManifestName {
		t.Fatalf("epoch 0 written as %v, want the legacy name", ents)
	}
	got, e, err := readManifestBelow(ctx, fs, "t", maxEpoch)
	if err != nil || e != 0 || !manifestsEqual(got, m) {
		t.Fatalf("readManifestBelow = %+v, epoch %d, %v; want the legacy manifest at epoch 0", got, e, err)
	}
	newer := testManifest()
	newer.flushedSeq = 77
	if err := writeManifest(ctx, fs, "t", 1, newer); err != nil {
		t.Fatal(err)
	}
	if got, err := readManifest(ctx, fs, "t"); err != nil || !manifestsEqual(got, newer) {
		t.Fatalf("readManifest with MANIFEST and MANIFEST-1 = %+v, %v; want MANIFEST-1's", got, err)
	}
	if got, e, err := readManifestBelow(ctx, fs, "t", 1); err != nil || e != 0 || !manifestsEqual(got, m) {
		t.Fatalf("readManifestBelow(1) = %+v, epoch %d, %v; want the legacy one", got, e, err)
	}
}

func TestParseEpochName(t *testing.T) {
	good := []struct {
		name string
		want epochFile
	}{
		{"MANIFEST", epochFile{}},
		{"MANIFEST.tmp", epochFile{tmp: true}},
		{"MANIFEST-1", epochFile{epoch: 1}},
		{"MANIFEST-42.tmp", epochFile{epoch: 42, tmp: true}},
		{"CLAIM-7", epochFile{epoch: 7, claim: true}},
		{"MANIFEST-9223372036854775807", epochFile{epoch: maxEpoch}},
	}
	for _, c := range good {
		got, ok := parseEpochName(c.name)
		if !ok || got != c.want {
			t.Errorf("parseEpochName(%q) = %+v, %v; want %+v", c.name, got, ok, c.want)
		}
	}
	for _, name := range []string{
		"", "MANIFEST-", "MANIFEST-x", "MANIFEST-01", "MANIFEST-0", "MANIFEST--1", "MANIFEST-+1",
		"MANIFEST-1x", "MANIFEST- 1", "MANIFEST-9223372036854775808", "MANIFEST-18446744073709551616",
		"MANIFEST-99999999999999999999999", "CLAIM-", "CLAIM-0", "CLAIM-1.tmp", "CLAIM", "MANIFEST-1.tmp.tmp",
		"manifest-1", "000001.sst", "CLAIM-1 ", "MANIFEST.tmp.tmp", "MANIFEST-.tmp",
	} {
		if got, ok := parseEpochName(name); ok {
			t.Errorf("parseEpochName(%q) = %+v, want a bad name", name, got)
		}
	}
}

// FuzzEpochName: every name parseEpochName accepts is the one name of
// what it parses to, so no two files claim one epoch.
func FuzzEpochName(f *testing.F) {
	for _, s := range []string{"MANIFEST", "MANIFEST.tmp", "MANIFEST-1", "MANIFEST-12.tmp", "CLAIM-3", "MANIFEST-01", "CLAIM-"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		ef, ok := parseEpochName(name)
		if !ok {
			return
		}
		var again string
		switch {
		case ef.claim:
			again = claimFileName(ef.epoch)
		default:
			again = manifestFileName(ef.epoch)
			if ef.tmp {
				again += tmpSuffix
			}
		}
		if again != name || ef.epoch > maxEpoch || ef.claim && (ef.tmp || ef.epoch == 0) {
			t.Fatalf("%q parses to %+v, which is named %q", name, ef, again)
		}
	})
}
