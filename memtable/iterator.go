package memtable

// Iterator walks a Memtable in key order. It has the engine's iterator
// shape (the tablet merges it with sstable.Iterator). Not safe for
// concurrent use by several goroutines, but safe while other goroutines Add
// to the memtable: it never sees a half-added entry. It holds no resources
// beyond the memtable itself; Close only invalidates it.
type Iterator struct {
	m      *Memtable
	node   uint32 // current node; nilOffset when not valid
	closed bool
}

// SeekGE positions the iterator at the first entry with a key >= key and
// reports Valid.
func (it *Iterator) SeekGE(key []byte) bool {
	if it.closed {
		return false
	}
	it.node = it.m.seekGE(key)
	return it.node != nilOffset
}

// First positions the iterator at the first entry and reports Valid.
func (it *Iterator) First() bool {
	if it.closed {
		return false
	}
	it.node = it.m.next(it.m.head, 0).Load()
	return it.node != nilOffset
}

// Next advances to the next entry and reports Valid. On an iterator that is
// not valid it stays not valid.
func (it *Iterator) Next() bool {
	if it.closed || it.node == nilOffset {
		return false
	}
	it.node = it.m.next(it.node, 0).Load()
	return it.node != nilOffset
}

// Valid reports whether the iterator is at an entry.
func (it *Iterator) Valid() bool { return !it.closed && it.node != nilOffset }

// Key returns the current entry's key; nil when not Valid. The contract lets
// it change at the next positioning call; in fact the bytes live in the
// arena and stay unchanged for the memtable's life. The caller must not
// modify them.
func (it *Iterator) Key() []byte {
	if !it.Valid() {
		return nil
	}
	return it.m.key(it.node)
}

// Value returns the current entry's value; nil when not Valid. Same
// ownership rules as Key.
func (it *Iterator) Value() []byte {
	if !it.Valid() {
		return nil
	}
	_, v := it.m.keyValue(it.node)
	return v
}

// Error returns nil: a memtable iterator does no I/O and meets no
// corruption. It is here for the engine's iterator shape.
func (it *Iterator) Error() error { return nil }

// Close invalidates the iterator; later positioning calls report false.
// It always returns nil.
func (it *Iterator) Close() error {
	it.closed = true
	it.node = nilOffset
	return nil
}
