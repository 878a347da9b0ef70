package enginebench

import (
	"bytes"
	"fmt"
	"math/rand/v2"
)

// putKey writes the 16-digit decimal of n into dst (len KeySize).
func putKey(dst []byte, n uint64) []byte {
	dst = dst[:KeySize]
	for i := KeySize - 1; i >= 0; i-- {
		dst[i] = byte('0' + n%10)
		n /= 10
	}
	return dst
}

// rowKey is the key of row i; missingKey is a key between rows i and i+1
// that is never written.
func rowKey(dst []byte, i int) []byte     { return putKey(dst, 2*uint64(i)) }
func missingKey(dst []byte, i int) []byte { return putKey(dst, 2*uint64(i)+1) }

// parseRow returns the row index of a key written by rowKey.
func parseRow(key []byte) (int, error) {
	if len(key) != KeySize {
		return 0, fmt.Errorf("%w: key %q is %d bytes, want %d", ErrMismatch, key, len(key), KeySize)
	}
	var n uint64
	for _, c := range key {
		if c < '0' || c > '9' {
			return 0, fmt.Errorf("%w: key %q is not one the harness writes", ErrMismatch, key)
		}
		n = n*10 + uint64(c-'0')
	}
	if n%2 != 0 {
		return 0, fmt.Errorf("%w: key %q is a missing key, never written", ErrMismatch, key)
	}
	return int(n / 2), nil
}

// mix is splitmix64: a stateless seeded hash used to pick read keys and
// value offsets, so any worker computes the same choice for an index.
func mix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// permutation returns a seeded random permutation of [0, n).
func permutation(seed uint64, n int) []uint32 {
	p := make([]uint32, n)
	for i := range p {
		p[i] = uint32(i)
	}
	r := rand.New(rand.NewPCG(seed, 0x5eed))
	r.Shuffle(n, func(i, j int) { p[i], p[j] = p[j], p[i] })
	return p
}

// values hands out the value of each row: a window of a seeded pool in
// which every 100 bytes are 50 random bytes followed by their copy, so a
// value compresses to about half its size.
type values struct {
	seed uint64
	size int
	pool []byte
}

const valuePoolSize = 1 << 20

func newValues(seed uint64, size int) *values {
	r := rand.New(rand.NewPCG(seed, 0xfa1))
	pool := make([]byte, valuePoolSize+size)
	for off := 0; off < len(pool); off += 100 {
		chunk := pool[off:min(off+100, len(pool))]
		half := min(50, len(chunk))
		for i := range half {
			chunk[i] = byte(r.Uint32())
		}
		copy(chunk[half:], chunk[:half])
	}
	return &values{seed: seed, size: size, pool: pool}
}

// of returns the value of row i (shared; callers must not modify it).
func (v *values) of(i int) []byte {
	off := mix(v.seed^uint64(i)*0x9e3779b97f4a7c15) % uint64(valuePoolSize)
	return v.pool[off : off+uint64(v.size)]
}

// check compares a value read back for row i.
func (v *values) check(i int, got []byte) error {
	if want := v.of(i); !bytes.Equal(got, want) {
		return fmt.Errorf("%w: row %d: value of %d bytes differs from the %d bytes written", ErrMismatch, i, len(got), len(want))
	}
	return nil
}
