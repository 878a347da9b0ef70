package mapreduce

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
)

// The shuffle (MapReduce §3.1 steps 4–5). Each map attempt appends its
// output to a sortBuffer. While the attempt runs, whenever its buffer
// reaches its share of RunOptions.MemoryBudget (see mapTask.emit), the
// attempt sorts it by (partition, key, emission order), runs the combiner
// over each key's values, and writes it to a spill file in TempDir: one
// sorted run holding a segment per partition. When the attempt succeeds its
// last buffer is sorted and combined the same way and kept in memory as a
// run if the budget allows, else spilled too. A failed attempt's buffer and
// files are dropped, so nothing of it reaches the reduce side.
//
// A reduce attempt for partition p reads that partition's segment of every
// run of every map task and k-way merges them by (key, run order), where run
// order is (map task, run index within the task). Since a task's runs hold
// its output in emission order, run after run, this yields each key's values
// by map task then emission order, whatever the spill points were: the
// reduce input, hence the output, does not depend on Workers or the budget
// (unless a combiner is not associative and commutative). Beyond
// MergeFactor runs, consecutive groups of runs are first merged into
// intermediate files, which keeps the order since each group is contiguous.

// entryOverhead is the bookkeeping charged per buffered record, in bytes
// (the size of entry).
const entryOverhead = 32

type entry struct {
	prefix     uint64 // the key's first 8 bytes, big-endian, zero-padded
	off        int    // of the key in data; the value follows it
	part       uint32
	klen, vlen uint32
	seq        uint32 // emission order within the buffer
}

// keyPrefix orders like bytes.Compare on the first 8 bytes, so the sort
// compares most keys without touching data (entries stay cache-friendly).
func keyPrefix(k []byte) uint64 {
	if len(k) >= 8 {
		return binary.BigEndian.Uint64(k)
	}
	var b [8]byte
	copy(b[:], k)
	return binary.BigEndian.Uint64(b[:])
}

// sortBuffer holds one map attempt's not yet spilled output.
type sortBuffer struct {
	data   []byte
	ents   []entry
	bytes  int64 // charged against the memory budget
	bounds []int // after finish: ents[bounds[p]:bounds[p+1]] is partition p
}

func (b *sortBuffer) add(part int, key, value []byte) int64 {
	e := entry{prefix: keyPrefix(key), off: len(b.data), part: uint32(part), klen: uint32(len(key)), vlen: uint32(len(value)), seq: uint32(len(b.ents))}
	b.data = append(b.data, key...)
	b.data = append(b.data, value...)
	b.ents = append(b.ents, e)
	n := int64(len(key)+len(value)) + entryOverhead
	b.bytes += n
	return n
}

func (b *sortBuffer) key(e *entry) []byte {
	return b.data[e.off : e.off+int(e.klen) : e.off+int(e.klen)]
}

func (b *sortBuffer) value(e *entry) []byte {
	s := e.off + int(e.klen)
	return b.data[s : s+int(e.vlen) : s+int(e.vlen)]
}

// sort orders the entries by (partition, key, emission order).
func (b *sortBuffer) sort() {
	slices.SortFunc(b.ents, func(x, y entry) int {
		if c := cmp.Compare(x.part, y.part); c != 0 {
			return c
		}
		if c := cmp.Compare(x.prefix, y.prefix); c != 0 {
			return c
		}
		if x.klen <= 8 || y.klen <= 8 {
			// Equal prefixes and a key within them: that key is a
			// prefix of the other, so the shorter sorts first.
			if c := cmp.Compare(x.klen, y.klen); c != 0 {
				return c
			}
		} else if c := bytes.Compare(b.key(&x)[8:], b.key(&y)[8:]); c != 0 {
			return c
		}
		return cmp.Compare(x.seq, y.seq)
	})
}

// finish computes the partition bounds of sorted entries.
func (b *sortBuffer) finish(numParts int) {
	b.bounds = make([]int, numParts+1)
	i := 0
	for p := 0; p <= numParts; p++ {
		for i < len(b.ents) && int(b.ents[i].part) < p {
			i++
		}
		b.bounds[p] = i
	}
}

// runSink receives sorted (partition, key, value) records.
type runSink interface {
	add(part int, key, value []byte) error
}

// memSink collects records into a new, already sorted, buffer.
type memSink struct{ b *sortBuffer }

func (s *memSink) add(part int, key, value []byte) error {
	s.b.add(part, key, value)
	return nil
}

// segment is the byte range of one partition in a run file.
type segment struct{ off, size int64 }

// fileSink writes a run file: each partition's records, in the record
// format without a file header, one segment after another.
type fileSink struct {
	path    string
	kvBytes int64 // key+value bytes written
	f       *os.File
	bw      *bufio.Writer
	off     int64
	segs    []segment
	scratch []byte
}

// createFileSink creates a run file; sizeHint (bytes expected) keeps the
// write buffer of a small spill small.
func createFileSink(path string, numParts int, sizeHint int64) (*fileSink, error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("cellar/mapreduce: create spill: %w", err)
	}
	bufSize := int(min(max(sizeHint, 4<<10), readBufferSize))
	return &fileSink{path: path, f: f, bw: bufio.NewWriterSize(f, bufSize), segs: make([]segment, numParts)}, nil
}

func (s *fileSink) add(part int, key, value []byte) error {
	s.scratch = appendRecord(s.scratch[:0], key, value)
	if _, err := s.bw.Write(s.scratch); err != nil {
		return fmt.Errorf("cellar/mapreduce: write spill %s: %w", s.path, err)
	}
	s.kvBytes += int64(len(key) + len(value))
	seg := &s.segs[part]
	if seg.size == 0 {
		seg.off = s.off
	}
	seg.size += int64(len(s.scratch))
	s.off += int64(len(s.scratch))
	return nil
}

// close flushes and closes the file; the run stays on disk.
func (s *fileSink) close() error {
	err := s.bw.Flush()
	if cerr := s.f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("cellar/mapreduce: write spill %s: %w", s.path, err)
	}
	return nil
}

// abandon closes and removes a partly written file.
func (s *fileSink) abandon() {
	s.f.Close()       //nolint:errcheck // already failing
	os.Remove(s.path) //nolint:errcheck // the directory goes at the end of Run
}

// run is one sorted run of one map task: in memory (mem) or in a file.
type run struct {
	mem  *sortBuffer
	path string
	segs []segment
}

// iter returns an iterator over partition p of the run, or nil if empty.
func (r *run) iter(p int) kvIter {
	if r.mem != nil {
		lo, hi := r.mem.bounds[p], r.mem.bounds[p+1]
		if lo == hi {
			return nil
		}
		return &memIter{b: r.mem, ents: r.mem.ents[lo:hi]}
	}
	if r.segs[p].size == 0 {
		return nil
	}
	return &fileIter{path: r.path, seg: r.segs[p]}
}

// kvIter iterates sorted records: io.EOF after the last. Slices returned
// are valid until the next call.
type kvIter interface {
	next() (key, value []byte, err error)
	close() error
}

type memIter struct {
	b    *sortBuffer
	ents []entry
}

func (it *memIter) next() ([]byte, []byte, error) {
	if len(it.ents) == 0 {
		return nil, nil, io.EOF
	}
	e := &it.ents[0]
	it.ents = it.ents[1:]
	return it.b.key(e), it.b.value(e), nil
}

func (it *memIter) close() error { return nil }

// fileIter reads one segment of a run file, opening it on first use so
// that a merge of many runs holds only MergeFactor files open.
type fileIter struct {
	path string
	seg  segment
	f    *os.File
	dec  *recordDecoder
}

const spillReadBuffer = 32 << 10

func (it *fileIter) next() ([]byte, []byte, error) {
	if it.dec == nil {
		f, err := os.Open(it.path)
		if err != nil {
			return nil, nil, fmt.Errorf("cellar/mapreduce: open spill: %w", err)
		}
		it.f = f
		br := bufio.NewReaderSize(io.NewSectionReader(f, it.seg.off, it.seg.size), int(min(it.seg.size, spillReadBuffer)))
		it.dec = newRecordDecoder(br, it.seg.size, it.seg.off)
	}
	k, v, err := it.dec.next()
	if err != nil && err != io.EOF {
		err = fmt.Errorf("spill %s: %w", filepath.Base(it.path), err)
	}
	return k, v, err
}

func (it *fileIter) close() error {
	if it.f == nil {
		return nil
	}
	err := it.f.Close()
	it.f = nil
	return err
}

// mergeIter k-way merges iterators by (key, position in the list given to
// newMerge); a binary min-heap of the sources' current records.
type mergeIter struct {
	srcs []kvIter
	heap []mergeItem
	init bool
}

type mergeItem struct {
	order      int
	key, value []byte
}

func newMerge(srcs []kvIter) *mergeIter { return &mergeIter{srcs: srcs} }

func (m *mergeIter) less(i, j int) bool {
	if c := bytes.Compare(m.heap[i].key, m.heap[j].key); c != 0 {
		return c < 0
	}
	return m.heap[i].order < m.heap[j].order
}

func (m *mergeIter) down(i int) {
	n := len(m.heap)
	for {
		l := 2*i + 1
		if l >= n {
			return
		}
		c := l
		if r := l + 1; r < n && m.less(r, l) {
			c = r
		}
		if !m.less(c, i) {
			return
		}
		m.heap[i], m.heap[c] = m.heap[c], m.heap[i]
		i = c
	}
}

func (m *mergeIter) next() ([]byte, []byte, error) {
	if !m.init {
		m.init = true
		for i, s := range m.srcs {
			k, v, err := s.next()
			if err == io.EOF {
				continue
			}
			if err != nil {
				return nil, nil, err
			}
			m.heap = append(m.heap, mergeItem{order: i, key: k, value: v})
		}
		for i := len(m.heap)/2 - 1; i >= 0; i-- {
			m.down(i)
		}
	} else if len(m.heap) > 0 {
		// Advance the source returned last time (still at the top).
		top := &m.heap[0]
		k, v, err := m.srcs[top.order].next()
		switch {
		case err == io.EOF:
			m.heap[0] = m.heap[len(m.heap)-1]
			m.heap = m.heap[:len(m.heap)-1]
		case err != nil:
			return nil, nil, err
		default:
			top.key, top.value = k, v
		}
		m.down(0)
	}
	if len(m.heap) == 0 {
		return nil, nil, io.EOF
	}
	return m.heap[0].key, m.heap[0].value, nil
}

func (m *mergeIter) close() error {
	var first error
	for _, s := range m.srcs {
		if err := s.close(); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// spillPath names a new file in the run's spill directory.
func (r *runner) spillPath(what string) string {
	return filepath.Join(r.tmp, fmt.Sprintf("%s-%06d.run", what, r.fileSeq.Add(1)))
}

// mergeDown merges consecutive groups of MergeFactor iterators into
// intermediate single-partition files until at most MergeFactor remain.
// The files are added to *files for the caller to remove.
func (r *runner) mergeDown(ctx context.Context, its []kvIter, part int, c *Counters, files *[]string) ([]kvIter, error) {
	f := r.opts.MergeFactor
	for len(its) > f {
		var next []kvIter
		for lo := 0; lo < len(its); lo += f {
			group := its[lo:min(lo+f, len(its))]
			if len(group) == 1 {
				next = append(next, group[0])
				continue
			}
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			path := r.spillPath(fmt.Sprintf("merge-r%d", part))
			sink, err := createFileSink(path, 1, readBufferSize)
			if err != nil {
				return nil, err
			}
			*files = append(*files, path)
			m := newMerge(group)
			for {
				k, v, err := m.next()
				if err == io.EOF {
					break
				}
				if err == nil {
					err = sink.add(0, k, v)
				}
				if err != nil {
					m.close() //nolint:errcheck // reporting err
					sink.abandon()
					return nil, err
				}
			}
			if err := m.close(); err != nil {
				sink.abandon()
				return nil, err
			}
			if err := sink.close(); err != nil {
				return nil, err
			}
			c.Spills++
			c.SpilledBytes += sink.off
			r.progress.spills.Add(1)
			next = append(next, &fileIter{path: path, seg: sink.segs[0]})
		}
		its = next
	}
	return its, nil
}
