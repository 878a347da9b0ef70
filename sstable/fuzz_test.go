package sstable

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"os"
	"path/filepath"
	"testing"
)

// FuzzBlock feeds arbitrary bytes to the block decoder: it must never panic
// or loop, must report only ErrCorrupt, and SeekGE must agree with a scan.
func FuzzBlock(f *testing.F) {
	f.Add(buildBlock(16, "apple", "1", "applet", "2", "apply", "3"), []byte("applf"))
	f.Add(buildBlock(2, "a", "", "b", "x", "c", "yy", "d", "zzz"), []byte("b"))
	f.Add(buildBlock(1, "k1", "v1"), []byte("k"))
	f.Add([]byte{0, 0, 0, 0}, []byte{})
	f.Fuzz(func(t *testing.T, block, target []byte) {
		var it blockIter
		if err := it.init(block); err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("init: %v, want ErrCorrupt", err)
			}
			return
		}
		var scanned [][]byte
		offsets := map[int]bool{}
		for ok := it.first(); ok; ok = it.nextEntry() {
			if len(scanned) > len(block) {
				t.Fatalf("more entries than bytes")
			}
			scanned = append(scanned, bytes.Clone(it.key))
			offsets[it.cur] = true
		}
		if it.err != nil && !errors.Is(it.err, ErrCorrupt) {
			t.Fatalf("scan: %v", it.err)
		}
		scanErr := it.err
		var seek blockIter
		if err := seek.init(block); err != nil {
			t.Fatalf("second init: %v", err)
		}
		found := seek.seekGE(target)
		if scanErr != nil || seek.err != nil {
			return
		}
		// A well-formed block with sorted keys: SeekGE must find the first
		// scanned key >= target.
		for i := 1; i < len(scanned); i++ {
			if bytes.Compare(scanned[i-1], scanned[i]) >= 0 {
				return // unsorted input: only safety is checked
			}
		}
		// Likewise a restart point inside an entry (the writer never makes
		// one; the block checksum rules it out on disk) is only checked for
		// safety.
		for i := 0; i < seek.numRestarts; i++ {
			if !offsets[seek.restart(i)] {
				return
			}
		}
		want := -1
		for i, k := range scanned {
			if bytes.Compare(k, target) >= 0 {
				want = i
				break
			}
		}
		if found != (want >= 0) || (found && !bytes.Equal(seek.key, scanned[want])) {
			t.Fatalf("seekGE(%q) = %v %q, scan says %d", target, found, seek.key, want)
		}
	})
}

// FuzzFooter: decodeFooter never panics, accepts only checksummed footers
// that re-encode to the same bytes, and checkLayout never panics.
func FuzzFooter(f *testing.F) {
	for _, g := range goldenTables {
		if b, err := os.ReadFile(filepath.Join("testdata", g.file)); err == nil && len(b) >= footerLen {
			f.Add(b[len(b)-footerLen:], uint64(len(b)-footerLen))
		}
	}
	f.Add(footer{Format: TableFormatV1}.encode(), uint64(0))
	f.Fuzz(func(t *testing.T, b []byte, footerOff uint64) {
		ft, err := decodeFooter(b)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("decodeFooter: %v", err)
			}
			return
		}
		if got := ft.encode(); !bytes.Equal(got, b) {
			t.Fatalf("footer %+v re-encodes to %x, was %x", ft, got, b)
		}
		if dataEnd, err := ft.checkLayout(footerOff); err == nil && dataEnd > footerOff {
			t.Fatalf("checkLayout accepted data end %d past footer %d", dataEnd, footerOff)
		}
	})
}

// FuzzReader opens arbitrary bytes as a table and reads everything: no
// panic, only ErrCorrupt. With fix set it first recomputes every checksum it
// can locate (footer, meta blocks, data blocks named by the index), so that
// mutations reach the structural checks behind the checksums.
func FuzzReader(f *testing.F) {
	// Small tables built like the golden ones (the full fixtures are large
	// inputs that slow the fuzzer down without adding coverage).
	kvs := goldenKVs()[:20]
	for _, g := range goldenTables {
		o := g.opts
		o.BlockSize = 128
		small, _ := buildTable(f, kvs, &o)
		f.Add(small, false)
		f.Add(small, true)
	}
	f.Fuzz(func(t *testing.T, b []byte, fix bool) {
		if fix {
			b = fixChecksums(bytes.Clone(b))
		}
		r, err := Open(&bytesFile{b: b}, "fuzz.sst", &ReaderOptions{Cache: NewCache(1 << 20)})
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("Open: %v", err)
			}
			return
		}
		defer r.Close()
		if _, err := readAll(r, len(b)); err != nil && !errors.Is(err, ErrCorrupt) {
			t.Fatalf("scan: %v", err)
		}
		it := r.NewIter()
		for _, e := range kvs {
			it.SeekGE(e.k)
			r.MayContain(e.k[:5])
		}
		if err := it.Close(); err != nil && !errors.Is(err, ErrCorrupt) {
			t.Fatalf("seek: %v", err)
		}
		r.MidKey()
		r.Properties()
	})
}

// fixChecksums rewrites the footer CRC and the trailer CRC of every block it
// can find through the footer and the index, leaving everything else as it
// is.
func fixChecksums(b []byte) []byte {
	if len(b) < footerLen {
		return b
	}
	ft := b[len(b)-footerLen:]
	binary.LittleEndian.PutUint32(ft[footerCRCOff:], crc32.Checksum(ft[:footerCRCCovered], crcTable))
	fix := func(h handle) []byte {
		if h.Length > uint64(len(b)) || h.Offset > uint64(len(b))-h.Length || uint64(len(b))-h.Length-h.Offset < blockTrailerLen {
			return nil
		}
		n := h.Offset + h.Length
		binary.LittleEndian.PutUint32(b[n+1:], blockChecksum(b[h.Offset:n], b[n]))
		var dec []byte
		out, _ := decodeBlockContents(b[h.Offset:n+blockTrailerLen], &dec)
		return out
	}
	get := func(off int) handle {
		return handle{binary.LittleEndian.Uint64(ft[off:]), binary.LittleEndian.Uint64(ft[off+8:])}
	}
	fix(get(footerFilterOff))
	fix(get(footerPropsOff))
	idx := fix(get(footerIndexOff))
	var it blockIter
	if it.init(idx) != nil {
		return b
	}
	for ok := it.first(); ok; ok = it.nextEntry() {
		if h, err := decodeHandle(it.val); err == nil {
			fix(h)
		}
	}
	return b
}
