package memtable

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math/bits"
	"math/rand/v2"
	"sync/atomic"
)

const (
	// maxHeight bounds a tower. With a branching factor of 4 a list of
	// 4^19 (over 10^11) entries still has its expected shape.
	maxHeight = 20
	// nodeHeaderSize is keyLen, valueLen and height, each a uint32.
	nodeHeaderSize = 12
	linkSize       = 4
)

// Memtable is a sorted in-memory buffer of (key, value) entries, keys
// compared with bytes.Compare and unique. It is a lock-free skiplist whose
// nodes, keys and values live in an arena that grows in chunks. Safe for
// concurrent use: any number of goroutines may call Add and read through
// iterators at the same time. Entries are never removed; the memtable is
// dropped whole once flushed.
type Memtable struct {
	arena *arena
	head  uint32 // offset of the head node: empty key, tower of maxHeight
	// height is the tallest tower linked so far (1..maxHeight); searches
	// start at height-1. It only grows.
	height atomic.Uint32
	count  atomic.Int64
	// gen counts resets: an Inserter's nodes belong to one generation.
	gen uint64
}

// New returns an empty memtable whose arena holds up to opts.ArenaSize bytes.
// The arena grows in chunks as entries are added: New allocates the first
// (256 KiB, or the arena size if smaller). nil opts means defaults. New panics if opts.Validate()
// fails: an out-of-range arena size is a programming error, and callers that
// take the size from configuration call Validate first.
func New(opts *Options) *Memtable {
	o := mustOptions(opts)
	m := &Memtable{arena: newArena(o.ArenaSize)}
	m.reset()
	return m
}

// mustOptions returns opts with defaults, panicking if they are invalid
// (see New).
func mustOptions(opts *Options) Options {
	var o Options
	if opts != nil {
		o = *opts
	}
	if err := o.Validate(); err != nil {
		panic(err)
	}
	return o.withDefaults()
}

// reset makes m empty: the arena is handed out from its start again, in
// the chunks it already has, and a new head node is written. Every node is
// fully initialised when written, so the arena's old bytes need no
// clearing.
func (m *Memtable) reset() {
	m.arena.reset()
	head, ok := m.arena.alloc(nodeSize(maxHeight, 0, 0))
	if !ok {
		// Unreachable: MinArenaSize is far above the head node's size.
		panic("cellar/memtable: arena too small for the head node")
	}
	m.initNode(head, maxHeight, nil, nil)
	m.head = head
	m.height.Store(1)
	m.count.Store(0)
	m.gen++
}

// nodeSize is the number of arena bytes a node with a tower of height h and
// the given key and value lengths takes, before alignment.
func nodeSize(h, keyLen, valueLen int) uint64 {
	return uint64(nodeHeaderSize) + uint64(h)*linkSize + uint64(keyLen) + uint64(valueLen)
}

// headOverhead is what a fresh memtable has already used: the reserved
// prefix and the head node.
const headOverhead = arenaAlign + nodeHeaderSize + maxHeight*linkSize

// ArenaSizeFor returns the smallest Options.ArenaSize (bytes) with which an
// entry of these key and value lengths is guaranteed to fit in a fresh
// memtable, whatever height its tower is given. Add returns ErrTooLarge
// exactly when ArenaSizeFor(len(key), len(value)) exceeds the arena size.
// The result may be below MinArenaSize or above MaxArenaSize.
func ArenaSizeFor(keyLen, valueLen int) int64 {
	n := nodeSize(maxHeight, keyLen, valueLen)
	n = (n + arenaAlign - 1) &^ (arenaAlign - 1)
	return int64(headOverhead + n)
}

// Add copies key and value into the memtable. Safe to call from many
// goroutines at once and concurrently with iterators. Errors:
//   - ErrDuplicate (wrapped) if key is already present;
//   - ErrTooLarge (wrapped) if the entry would not fit even in an empty
//     memtable of this size (see ArenaSizeFor);
//   - ErrArenaFull if it does not fit in the space left.
//
// On any error nothing visible was added. A nil or empty value is allowed.
func (m *Memtable) Add(key, value []byte) error {
	return m.add(nil, key, value, randomHeight())
}

// An Inserter makes a run of Adds with ascending keys, such as the cells of
// one row in order, cheaper: each Add searches from the nodes the previous
// one linked instead of from the top of the list, which for adjacent keys
// is a step or two per level instead of a walk down every level. A key not
// above the previous one is added with a full search, as Add does. The zero
// value is ready; an Inserter is for one goroutine at a time and follows one
// memtable (given another, or after the memtable was reset, it starts
// over).
type Inserter struct {
	m    *Memtable
	gen  uint64
	last uint32 // the node the previous Add linked; 0: none yet
	// prev[i] is a node linked at level i (or the head) whose key is at
	// most last's: a valid place to start searching level i for any key
	// above last's, since nodes are never removed.
	prev [maxHeight]uint32
}

// AddWith is Add through ins (see Inserter), with the same errors; after
// an error ins is still valid.
func (m *Memtable) AddWith(ins *Inserter, key, value []byte) error {
	return m.add(ins, key, value, randomHeight())
}

// add is Add (through ins, if not nil) with the tower height h
// (1..maxHeight) given.
func (m *Memtable) add(ins *Inserter, key, value []byte, h int) error {
	if need := ArenaSizeFor(len(key), len(value)); need > m.arena.capacity {
		return fmt.Errorf("%w: key %d bytes + value %d bytes needs an arena of %d bytes, have %d",
			ErrTooLarge, len(key), len(value), need, m.arena.capacity)
	}
	var prev, next [maxHeight]uint32
	hinted := ins != nil && ins.m == m && ins.gen == m.gen && ins.last != 0 &&
		bytes.Compare(m.key(ins.last), key) < 0
	if hinted {
		// Only the levels the new node is linked at need a splice.
		for i := h - 1; i >= 0; i-- {
			var found bool
			prev[i], next[i], found = m.findSpliceForLevel(key, i, ins.prev[i])
			if found {
				return duplicateError(key)
			}
		}
	} else {
		listHeight := int(m.height.Load())
		for i := maxHeight - 1; i >= listHeight; i-- {
			prev[i], next[i] = m.head, nilOffset
		}
		before := m.head
		for i := listHeight - 1; i >= 0; i-- {
			var found bool
			prev[i], next[i], found = m.findSpliceForLevel(key, i, before)
			if found {
				return duplicateError(key)
			}
			before = prev[i]
		}
	}

	nd, ok := m.arena.alloc(nodeSize(h, len(key), len(value)))
	if !ok {
		return ErrArenaFull
	}
	m.initNode(nd, h, key, value)

	// Raise the list height first so that searches started after the node
	// is linked at its upper levels descend through them.
	for cur := m.height.Load(); uint32(h) > cur; cur = m.height.Load() {
		if m.height.CompareAndSwap(cur, uint32(h)) {
			break
		}
	}

	// Link bottom-up: once linked at level 0 the entry is in the memtable;
	// the upper levels only speed up searches. A node reachable at level
	// i+1 is therefore always linked at level i, which searches rely on.
	for i := 0; i < h; i++ {
		for {
			m.next(nd, i).Store(next[i])
			if m.next(prev[i], i).CompareAndSwap(next[i], nd) {
				break
			}
			// Someone linked a node after prev[i] at this level: search
			// again from prev[i], which is still before key (nodes are
			// never removed).
			var found bool
			prev[i], next[i], found = m.findSpliceForLevel(key, i, prev[i])
			if found && i == 0 {
				// A concurrent Add of the same key won. Our node stays
				// unreachable; its bytes are lost to the arena.
				return duplicateError(key)
			}
		}
	}
	m.count.Add(1)
	if ins != nil {
		if !hinted { // every level's splice is known: start the hint over
			ins.m, ins.gen = m, m.gen
			ins.prev = prev
		}
		for i := range h {
			ins.prev[i] = nd
		}
		ins.last = nd
	}
	return nil
}

func duplicateError(key []byte) error {
	const show = 64
	if len(key) > show {
		return fmt.Errorf("%w: %x... (%d bytes)", ErrDuplicate, key[:show], len(key))
	}
	return fmt.Errorf("%w: %x", ErrDuplicate, key)
}

// findSpliceForLevel walks level i from before (a node whose key is < key,
// or the head) and returns the last node with a key < key and the node after
// it (nilOffset at the end). found reports that the node after has exactly
// key.
func (m *Memtable) findSpliceForLevel(key []byte, i int, before uint32) (prev, next uint32, found bool) {
	prev = before
	pb := m.arena.at(prev) // prev's bytes, carried along: one chunk lookup per step
	for {
		next = link(pb, i).Load()
		if next == nilOffset {
			return prev, next, false
		}
		nb := m.arena.at(next)
		switch c := bytes.Compare(nodeKey(nb), key); {
		case c < 0:
			prev, pb = next, nb
		case c == 0:
			return prev, next, true
		default:
			return prev, next, false
		}
	}
}

// seekGE returns the first node with a key >= key at level 0, or nilOffset.
func (m *Memtable) seekGE(key []byte) uint32 {
	prev := m.head
	var next uint32
	for i := int(m.height.Load()) - 1; i >= 0; i-- {
		var found bool
		prev, next, found = m.findSpliceForLevel(key, i, prev)
		if found {
			return next
		}
	}
	return next
}

// randomHeight draws a tower height: P(h > k) = 4^-k, capped at maxHeight.
// Each pair of trailing zero bits of a uniform word has probability 1/4.
func randomHeight() int {
	return 1 + min(bits.TrailingZeros64(rand.Uint64())/2, maxHeight-1)
}

// initNode writes a node's header, empty tower, key and value at off. The
// node is not yet reachable, so plain writes are fine: it is published by
// the CAS that links it, which orders these writes (and the installation
// of its chunk, see arena.install) before any reader that finds it.
func (m *Memtable) initNode(off uint32, h int, key, value []byte) {
	b := m.arena.at(off)
	binary.LittleEndian.PutUint32(b, uint32(len(key)))
	binary.LittleEndian.PutUint32(b[4:], uint32(len(value)))
	binary.LittleEndian.PutUint32(b[8:], uint32(h))
	for i := range h {
		uint32At(b, nodeHeaderSize+uint32(i)*linkSize).Store(nilOffset)
	}
	kv := nodeHeaderSize + uint32(h)*linkSize
	copy(b[kv:], key)
	copy(b[kv+uint32(len(key)):], value)
}

// next returns the level-i link of the node at off.
func (m *Memtable) next(off uint32, i int) *atomic.Uint32 { return link(m.arena.at(off), i) }

// link returns the level-i link of the node whose bytes are b (see
// arena.at).
func link(b []byte, i int) *atomic.Uint32 {
	return uint32At(b, nodeHeaderSize+uint32(i)*linkSize)
}

// keyValue returns the key and value of the node at off, as slices of the
// arena capped to their length (an append by the caller copies).
func (m *Memtable) keyValue(off uint32) (key, value []byte) {
	b := m.arena.at(off)
	kl := binary.LittleEndian.Uint32(b)
	vl := binary.LittleEndian.Uint32(b[4:])
	h := binary.LittleEndian.Uint32(b[8:])
	k := nodeHeaderSize + h*linkSize
	v := k + kl
	return b[k:v:v], b[v : v+vl : v+vl]
}

func (m *Memtable) key(off uint32) []byte { return nodeKey(m.arena.at(off)) }

// nodeKey returns the key of the node whose bytes are b (see arena.at).
func nodeKey(b []byte) []byte {
	kl := binary.LittleEndian.Uint32(b)
	h := binary.LittleEndian.Uint32(b[8:])
	k := nodeHeaderSize + h*linkSize
	return b[k : k+kl : k+kl]
}

// NewIter returns an unpositioned iterator over the memtable: call First or
// SeekGE. It sees every entry whose Add returned before NewIter was called,
// and may or may not see entries added while it is in use. The iterator is
// for one goroutine; many iterators may be used at once alongside Add.
func (m *Memtable) NewIter() *Iterator { return &Iterator{m: m} }

// Size returns the bytes the arena holds for the entries: node overhead,
// the head node, and the waste at chunk tails (the rest of a chunk an entry
// did not fit in). Compare it with the arena size for flush decisions. Add
// fails only when the bytes without that waste would pass Capacity, so
// Size may end above Capacity by the waste: under 1% for entries up to
// about 10 KB, up to half for entries of 85-256 KiB (see doc.go).
// Safe for concurrent use.
func (m *Memtable) Size() int64 { return m.arena.size() }

// Capacity returns the arena size in bytes (Options.ArenaSize with
// defaults): the most bytes of entries (with node overhead) it takes.
func (m *Memtable) Capacity() int64 { return m.arena.capacity }

// Len returns the number of entries added. Safe for concurrent use.
func (m *Memtable) Len() int { return int(m.count.Load()) }

// Empty reports whether no entry has been added.
func (m *Memtable) Empty() bool { return m.count.Load() == 0 }
