package ycsb

import (
	"math"
	"math/rand/v2"
	"strconv"
	"sync"
)

// The generators follow YCSB's site.ycsb.generator package. Each holds no
// random source of its own: callers pass one, so every client goroutine
// draws from its own seeded source. None is safe for concurrent use except
// insertCounter.

// ZipfianConstant is YCSB's default zipfian constant (theta).
const ZipfianConstant = 0.99

const (
	// scrambledItemCount and scrambledZetan are YCSB's
	// ScrambledZipfianGenerator.ITEM_COUNT and ZETAN: the zipfian draw is
	// over 10^10 items, then hashed into the key space.
	scrambledItemCount = 10_000_000_000
	scrambledZetan     = 26.46902820178302
)

const (
	fnvOffset64 = 0xCBF29CE484222325
	fnvPrime64  = 1099511628211
)

// fnvHash64 is YCSB's Utils.fnvhash64: FNV-1a over the 8 little-endian bytes
// of v, made non-negative with Java's Math.abs (which leaves MinInt64 as is).
func fnvHash64(v int64) int64 {
	h := uint64(fnvOffset64)
	u := uint64(v)
	for range 8 {
		h ^= u & 0xff
		u >>= 8
		h *= fnvPrime64
	}
	r := int64(h)
	if r < 0 {
		r = -r
	}
	return r
}

// KeyName is the key of the record with ordered insert id id: "user" + the
// decimal FNV-1a-64 hash of id (YCSB's buildKeyName with insertorder=hashed).
func KeyName(id int64) string {
	return "user" + strconv.FormatInt(fnvHash64(id), 10)
}

// zeta returns sum_{i=from+1..to} 1/i^theta added to start.
func zeta(from, to int64, theta, start float64) float64 {
	s := start
	for i := from; i < to; i++ {
		s += 1 / math.Pow(float64(i+1), theta)
	}
	return s
}

// zipfian is YCSB's ZipfianGenerator over [0, items): item 0 is the most
// popular. It recomputes zeta incrementally when asked for a larger item
// count (used by latest); unlike YCSB it also updates the count it holds
// zeta for and recomputes eta from the new count.
type zipfian struct {
	items      int64
	theta      float64
	alpha      float64
	zeta2theta float64
	zetan      float64
	eta        float64
	half       float64 // 1 + 0.5^theta
}

func newZipfian(items int64, theta float64) *zipfian {
	return newZipfianZeta(items, theta, zeta(0, items, theta, 0))
}

func newZipfianZeta(items int64, theta, zetan float64) *zipfian {
	z := &zipfian{items: items, theta: theta, alpha: 1 / (1 - theta), zeta2theta: zeta(0, 2, theta, 0), zetan: zetan}
	z.half = 1 + math.Pow(0.5, theta)
	z.setEta()
	return z
}

func (z *zipfian) setEta() {
	z.eta = (1 - math.Pow(2/float64(z.items), 1-z.theta)) / (1 - z.zeta2theta/z.zetan)
}

// next draws from [0, items).
func (z *zipfian) next(r *rand.Rand) int64 { return z.nextN(r, z.items) }

// nextN draws from [0, n), growing the item count to n first if n is larger
// (smaller counts are drawn with the larger count's zeta, as YCSB does when
// allowitemcountdecrease is false).
func (z *zipfian) nextN(r *rand.Rand, n int64) int64 {
	if n > z.items {
		z.zetan = zeta(z.items, n, z.theta, z.zetan)
		z.items = n
		z.setEta()
	}
	u := r.Float64()
	uz := u * z.zetan
	if uz < 1 {
		return 0
	}
	if uz < z.half {
		return 1
	}
	v := int64(float64(n) * math.Pow(z.eta*u-z.eta+1, z.alpha))
	if v >= n { // float rounding
		v = n - 1
	}
	return v
}

// scrambledZipfian is YCSB's ScrambledZipfianGenerator over [0, items): a
// zipfian draw over 10^10 items, FNV-hashed modulo items, so popular ids are
// scattered.
type scrambledZipfian struct {
	items int64
	z     *zipfian
}

func newScrambledZipfian(items int64) *scrambledZipfian {
	return &scrambledZipfian{items: items, z: newZipfianZeta(scrambledItemCount, ZipfianConstant, scrambledZetan)}
}

func (s *scrambledZipfian) next(r *rand.Rand) int64 {
	return fnvHash64(s.z.next(r)) % s.items
}

// insertCounter hands out insert ids in order and tracks the highest id
// below which every id is acknowledged (YCSB's AcknowledgedCounterGenerator):
// readers only choose acknowledged ids, so a read never races its insert.
// Safe for concurrent use.
type insertCounter struct {
	mu      sync.Mutex
	next    int64          // next id to hand out
	limit   int64          // ids < limit are all acknowledged
	pending map[int64]bool // acknowledged ids >= limit
}

func newInsertCounter(start int64) *insertCounter {
	return &insertCounter{next: start, limit: start, pending: map[int64]bool{}}
}

// Next returns a new id to insert.
func (c *insertCounter) Next() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	id := c.next
	c.next++
	return id
}

// Ack marks id as inserted.
func (c *insertCounter) Ack(id int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.pending[id] = true
	for c.pending[c.limit] {
		delete(c.pending, c.limit)
		c.limit++
	}
}

// Count is the number of ids below which all are acknowledged.
func (c *insertCounter) Count() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.limit
}

// Distribution names a request distribution.
type Distribution string

// The request distributions of the core workloads.
const (
	Uniform Distribution = "uniform"
	Zipfian Distribution = "zipfian" // scrambled zipfian, constant 0.99
	Latest  Distribution = "latest"  // skewed towards the latest inserts
)

// keyChooser picks the id of an existing record. One per client goroutine.
type keyChooser interface {
	// next returns an id in [0, count), count being the number of
	// acknowledged records now.
	next(r *rand.Rand, count int64) int64
}

type uniformChooser struct{}

func (uniformChooser) next(r *rand.Rand, count int64) int64 { return r.Int64N(count) }

// zipfianChooser draws scrambled zipfian ids over a key space fixed at the
// workload's start (records then + expected inserts) and redraws ids not yet
// acknowledged, as YCSB's CoreWorkload.nextKeynum does.
type zipfianChooser struct{ s *scrambledZipfian }

func (c zipfianChooser) next(r *rand.Rand, count int64) int64 {
	for {
		if id := c.s.next(r); id < count {
			return id
		}
	}
}

// latestChooser is YCSB's SkewedLatestGenerator: the newest acknowledged
// record is the most popular, then the one before it, and so on.
type latestChooser struct{ z *zipfian }

func (c latestChooser) next(r *rand.Rand, count int64) int64 {
	last := count - 1
	if last <= 0 {
		return 0
	}
	return last - c.z.nextN(r, last)
}
