package chunkserver

import (
	"bytes"
	"errors"
	"hash/crc32"
	"testing"
)

func sampleMeta() []byte {
	data := bytes.Repeat([]byte{7}, 70000)
	m := chunkMeta{Handle: 7, Version: 2, Length: 70000, CRCs: []uint32{
		crc32.Checksum(data[:BlockSize], castagnoli), crc32.Checksum(data[BlockSize:], castagnoli)}}
	return encodeMeta(nil, m)
}

func TestMetaWorkedExample(t *testing.T) {
	b := sampleMeta()
	if len(b) != 48 {
		t.Fatalf("encoded sidecar is %d bytes, want 48 (doc.go worked example)", len(b))
	}
	m, err := decodeMeta(b)
	if err != nil {
		t.Fatal(err)
	}
	if m.Handle != 7 || m.Version != 2 || m.Length != 70000 || len(m.CRCs) != 2 {
		t.Fatalf("decodeMeta = %+v", m)
	}
}

func TestMetaRejectsDamage(t *testing.T) {
	good := sampleMeta()
	for i := range good {
		b := bytes.Clone(good)
		b[i] ^= 0x40
		m, err := decodeMeta(b)
		if i < metaHeaderSize {
			if !errors.Is(err, ErrCorruptMeta) {
				t.Errorf("flip of byte %d: decodeMeta = %+v, %v; want ErrCorruptMeta", i, m, err)
			}
		}
	}
	for _, n := range []int{0, 10, 39, 44, 47, 49} {
		b := good
		if n <= len(good) {
			b = good[:n]
		} else {
			b = append(bytes.Clone(good), 0)
		}
		if _, err := decodeMeta(b); !errors.Is(err, ErrCorruptMeta) {
			t.Errorf("decodeMeta(%d bytes) = %v, want ErrCorruptMeta", n, err)
		}
	}
}

func FuzzChecksums(f *testing.F) {
	f.Add(sampleMeta())
	f.Add(encodeMeta(nil, chunkMeta{Handle: 1, Version: 1}))
	f.Add([]byte("CCHK"))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := decodeMeta(b)
		if err != nil {
			if !errors.Is(err, ErrCorruptMeta) {
				t.Fatalf("decodeMeta error %v is not ErrCorruptMeta", err)
			}
			return
		}
		if again := encodeMeta(nil, m); !bytes.Equal(again, b) {
			t.Fatalf("encode(decode(b)) != b")
		}
	})
}
