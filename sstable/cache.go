package sstable

import (
	"sync"
	"sync/atomic"
)

// Cache is a block cache shared by many Readers, bounded in bytes: the sum
// of the charges of the blocks it holds never exceeds its capacity, at any
// instant. A block's charge is its decoded length plus a fixed per-entry
// overhead (cacheEntryOverhead). Entries are keyed by (reader id, block
// offset); every Reader opened with a Cache gets a fresh id from it, so a
// reopened or replaced file never sees another file's blocks.
//
// Why a small sharded LRU of our own rather than a library: the
// count-bounded hashicorp/golang-lru cannot bound bytes; ristretto's
// admission policy may drop a Set, it bounds cost only eventually and it
// runs goroutines that need Close; otter (v2.4.0) may "temporarily exceed
// the threshold while evicting" and runs maintenance on an executor that
// defaults to `go fn()`, which goleak in the tablet's tests would flag. In
// a side-by-side run of BenchmarkCacheParallel's workload at 16 MiB with a
// 42 MiB working set (2 cores, loaded machine) this cache took 266-1235
// ns/op and 0 allocs/op, otter 526-852 ns/op and 1 alloc/op. A strict byte
// bound with no goroutines is ~100
// lines: the cache is split into up to 16 shards by a hash of the key, each
// a segmented LRU under its own mutex with capacity/shards bytes, so readers
// on different blocks rarely contend. A block larger than a shard's capacity
// is simply not cached.
//
// Segmented LRU: a new block enters a probation list; a hit there promotes
// it to a protected list of at most protectedShare of the shard; the
// protected list's least recently used blocks fall back to probation, and
// eviction takes probation's least recently used first. A full scan reads
// each of its blocks once, so its blocks pass through probation without
// evicting the blocks that point reads keep hitting (a plain LRU loses them
// all to a scan larger than the cache).
//
// A Cache is safe for concurrent use. Reader.Close drops the reader's
// blocks, so a deleted table's blocks do not crowd out live ones.
type Cache struct {
	shards   []cacheShard
	capacity int64
	size     atomic.Int64
	hits     atomic.Uint64
	misses   atomic.Uint64
	nextID   atomic.Uint64
}

// CacheStats is a snapshot of a Cache's counters.
type CacheStats struct {
	Hits, Misses uint64
	Size         int64 // bytes charged now
	Capacity     int64 // bytes
}

// cacheEntryOverhead is charged per block on top of its length (bytes): the
// entry, its map slot and list links.
const cacheEntryOverhead = 96

// minShardBytes keeps shards large enough for several default-size blocks.
const minShardBytes = 4 * DefaultBlockSize

const maxCacheShards = 16

type cacheKey struct{ id, off uint64 }

type cacheEntry struct {
	key        cacheKey
	data       []byte
	charge     int64
	protected  bool // in the protected list, else in probation
	prev, next *cacheEntry
}

// protectedShare is the part of a shard's capacity that blocks hit at least
// twice may hold (numerator over 100).
const protectedShare = 80

type cacheShard struct {
	mu struct {
		sync.Mutex
		capacity  int64
		size      int64
		protCap   int64 // capacity of the protected list
		protSize  int64 // bytes in the protected list
		m         map[cacheKey]*cacheEntry
		probation cacheEntry // sentinel: probation.next is the most recent
		protected cacheEntry // sentinel: protected.next is the most recent
	}
}

// NewCache returns a cache holding at most capacityBytes bytes of blocks. A
// capacity of zero or less caches nothing (every lookup misses).
func NewCache(capacityBytes int64) *Cache {
	capacityBytes = max(capacityBytes, 0)
	n := 1
	for n < maxCacheShards && capacityBytes/int64(2*n) >= minShardBytes {
		n *= 2
	}
	c := &Cache{shards: make([]cacheShard, n), capacity: capacityBytes}
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.capacity = capacityBytes / int64(n)
		s.mu.protCap = s.mu.capacity * protectedShare / 100
		s.mu.m = make(map[cacheKey]*cacheEntry)
		s.mu.probation.next, s.mu.probation.prev = &s.mu.probation, &s.mu.probation
		s.mu.protected.next, s.mu.protected.prev = &s.mu.protected, &s.mu.protected
	}
	return c
}

// Stats returns the counters; Size and the hit counts are read without
// stopping concurrent users, so they are each exact but not one snapshot. A
// nil Cache reports zeros.
func (c *Cache) Stats() CacheStats {
	if c == nil {
		return CacheStats{}
	}
	return CacheStats{Hits: c.hits.Load(), Misses: c.misses.Load(), Size: c.size.Load(), Capacity: c.capacity}
}

// newID returns an id no other Reader of this cache has.
func (c *Cache) newID() uint64 { return c.nextID.Add(1) }

func (c *Cache) shard(k cacheKey) *cacheShard {
	h := k.id*0x9E3779B97F4A7C15 ^ k.off
	h ^= h >> 33
	h *= 0xff51afd7ed558ccd
	h ^= h >> 33
	return &c.shards[h%uint64(len(c.shards))]
}

// get returns the cached block and marks it most recently used, promoting
// it to the protected list. The slice is shared and must not be modified.
func (c *Cache) get(id, off uint64) ([]byte, bool) {
	k := cacheKey{id, off}
	s := c.shard(k)
	s.mu.Lock()
	e, ok := s.mu.m[k]
	if ok {
		s.unlinkLocked(e)
		if !e.protected {
			e.protected = true
			s.mu.protSize += e.charge
		}
		s.pushFrontLocked(e)
		for s.mu.protSize > s.mu.protCap {
			old := s.mu.protected.prev
			s.unlinkLocked(old)
			old.protected = false
			s.mu.protSize -= old.charge
			s.pushFrontLocked(old)
		}
	}
	s.mu.Unlock()
	if !ok {
		c.misses.Add(1)
		return nil, false
	}
	c.hits.Add(1)
	return e.data, true
}

// set inserts a block (which must not be modified afterwards) on probation,
// evicting the least recently used blocks of its shard, probation's first,
// to make room.
func (c *Cache) set(id, off uint64, data []byte) {
	k := cacheKey{id, off}
	s := c.shard(k)
	charge := int64(len(data)) + cacheEntryOverhead
	s.mu.Lock()
	defer s.mu.Unlock()
	if charge > s.mu.capacity {
		return
	}
	if old, ok := s.mu.m[k]; ok {
		s.removeLocked(c, old)
	}
	for s.mu.size+charge > s.mu.capacity {
		victim := s.mu.probation.prev
		if victim == &s.mu.probation {
			victim = s.mu.protected.prev
		}
		s.removeLocked(c, victim)
	}
	e := &cacheEntry{key: k, data: data, charge: charge}
	s.mu.m[k] = e
	s.pushFrontLocked(e)
	s.mu.size += charge
	c.size.Add(charge)
}

// evict drops the block if it is cached.
func (c *Cache) evict(id, off uint64) {
	k := cacheKey{id, off}
	s := c.shard(k)
	s.mu.Lock()
	if e, ok := s.mu.m[k]; ok {
		s.removeLocked(c, e)
	}
	s.mu.Unlock()
}

func (s *cacheShard) removeLocked(c *Cache, e *cacheEntry) {
	s.unlinkLocked(e)
	if e.protected {
		s.mu.protSize -= e.charge
	}
	delete(s.mu.m, e.key)
	s.mu.size -= e.charge
	c.size.Add(-e.charge)
}

func (s *cacheShard) unlinkLocked(e *cacheEntry) {
	e.prev.next, e.next.prev = e.next, e.prev
	e.prev, e.next = nil, nil
}

// pushFrontLocked makes e the most recent entry of its list.
func (s *cacheShard) pushFrontLocked(e *cacheEntry) {
	l := &s.mu.probation
	if e.protected {
		l = &s.mu.protected
	}
	e.prev, e.next = l, l.next
	l.next.prev = e
	l.next = e
}
