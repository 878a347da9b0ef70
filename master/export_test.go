package master

import (
	"context"

	datapb "cellar/proto/cellar/data/v1"
)

// Access to a term for the tests in package master_test (fence_test.go),
// which need the mini-cluster (internal/testcluster imports master).

// Term is a term as tests see it.
type Term = term

// ActiveTerm returns m's current term, or nil while m is a standby.
func (m *Master) ActiveTerm() *Term {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.active
}

// Done is closed when the term ends.
func (t *term) Done() <-chan struct{} { return t.done }

// ReleaseLock releases the term's lock on MasterPath, leaving its session
// and the term running: a master deposed without noticing yet.
func (t *term) ReleaseLock(ctx context.Context) error { return t.lc.Release(ctx, MasterPath) }

// MetaRecorded reports whether the root tablet names a location for
// every META tablet the term knows (ensureMetas).
func (t *term) MetaRecorded() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	metas := t.metaTabletsLocked()
	for _, ti := range metas {
		if t.metaLocs[ti.desc.TabletId] == "" {
			return false
		}
	}
	return len(metas) > 0
}

func (t *term) MutateMetaRow(ctx context.Context, key []byte, muts ...*datapb.Mutation) error {
	return t.mutateMetaRow(ctx, key, muts...)
}

func (t *term) CheckAndMutateMetaRow(ctx context.Context, key []byte, pred *datapb.RowFilter, muts ...*datapb.Mutation) (bool, error) {
	return t.checkAndMutateMetaRow(ctx, key, pred, muts...)
}

// WriteMetaLocation records desc's location with the batched writeMeta.
func (t *term) WriteMetaLocation(ctx context.Context, desc *datapb.TabletDescriptor, serverID, addr string) error {
	return t.writeMeta(ctx, []metaRow{{desc: desc, serverID: serverID, addr: addr}})
}

func (t *term) ReadMetaRow(ctx context.Context, key []byte) (map[string][]byte, error) {
	return t.readMetaRow(ctx, key)
}
