package mapreduce

import (
	"bytes"
	"context"
	"slices"
	"sync"
)

// MemOutput keeps a job's output in memory: for small results such as
// counts. It follows the commit protocol: a partition's records become
// visible when its attempt commits, replacing any earlier attempt's. Use a
// *MemOutput; it is safe for concurrent use.
type MemOutput struct {
	mu    sync.Mutex
	parts map[int][]Record
}

var _ Output = (*MemOutput)(nil)

// Writer opens the writer of one reduce attempt.
func (o *MemOutput) Writer(ctx context.Context, task TaskInfo) (PartitionWriter, error) {
	return &memWriter{o: o, part: task.Task}, nil
}

// Records returns the committed records, by partition then in the order
// they were written (key order). The slices are the caller's.
func (o *MemOutput) Records() []Record {
	o.mu.Lock()
	defer o.mu.Unlock()
	parts := make([]int, 0, len(o.parts))
	for p := range o.parts {
		parts = append(parts, p)
	}
	slices.Sort(parts)
	var out []Record
	for _, p := range parts {
		out = append(out, o.parts[p]...)
	}
	return out
}

type memWriter struct {
	o    *MemOutput
	part int
	recs []Record
}

func (w *memWriter) Write(ctx context.Context, key, value []byte) error {
	w.recs = append(w.recs, Record{Key: bytes.Clone(key), Value: bytes.Clone(value)})
	return nil
}

func (w *memWriter) Commit(ctx context.Context) error {
	w.o.mu.Lock()
	defer w.o.mu.Unlock()
	if w.o.parts == nil {
		w.o.parts = map[int][]Record{}
	}
	w.o.parts[w.part] = w.recs
	return nil
}

func (w *memWriter) Abort(ctx context.Context) error {
	w.recs = nil
	return nil
}
