package master_test

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"go.uber.org/goleak"

	"cellar/internal/metadata"
	"cellar/internal/serr"
	"cellar/internal/testcluster"
	datapb "cellar/proto/cellar/data/v1"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// hashicorp/raft's and go-metrics' package-level goroutines.
		goleak.IgnoreAnyFunction("github.com/hashicorp/go-metrics.(*InmemSink).run"),
		goleak.IgnoreAnyFunction("github.com/armon/go-metrics.(*InmemSink).run"),
	)
}

// A term whose lock is gone (here released behind its back; a pause or a
// partition the lock client has not noticed yet is the same) while a new
// master is active cannot write METADATA: MutateRow, CheckAndMutateRow
// and the batched MutateRows are refused with ErrStaleSequencer, the row
// is unchanged, and the term steps down instead of acting on.
func TestDeposedTermCannotWriteMetadata(t *testing.T) {
	c := testcluster.Start(t, testcluster.Options{Servers: 1, Masters: 2, MemFS: true})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := c.WaitAllAssigned(ctx); err != nil {
		t.Fatal(err)
	}
	i, err := c.WaitActiveMaster(ctx)
	if err != nil {
		t.Fatal(err)
	}
	old := c.Masters[i].M.ActiveTerm()
	eventually := func(what string, cond func() bool) {
		t.Helper()
		for !cond() {
			select {
			case <-ctx.Done():
				t.Fatalf("timed out waiting for %s", what)
			case <-time.After(20 * time.Millisecond):
			}
		}
	}
	eventually("the first master to record META's location", func() bool { return old.MetaRecorded() })
	key := metadata.RowKey(metadata.TableID, nil) // META's row, in the root tablet
	before, err := old.ReadMetaRow(ctx, key)
	if err != nil || len(before[metadata.QualLocation]) == 0 {
		t.Fatalf("META's row before = %q, %v", before, err)
	}

	if err := old.ReleaseLock(ctx); err != nil {
		t.Fatal(err)
	}
	next := c.Masters[1-i].M
	eventually("the standby to take over and record META's location", func() bool {
		nt := next.ActiveTerm()
		return nt != nil && nt.MetaRecorded()
	})

	loc := &datapb.Mutation{Mutation: &datapb.Mutation_SetCell_{SetCell: &datapb.Mutation_SetCell{
		Family: metadata.Family, Qualifier: []byte(metadata.QualLocation), Timestamp: metadata.CellTimestamp,
		Value: metadata.EncodeLocation("deposed", "127.0.0.1:1")}}}
	if err := old.MutateMetaRow(ctx, key, loc); !errors.Is(err, serr.ErrStaleSequencer) {
		t.Errorf("mutateMetaRow of a deposed term = %v, want ErrStaleSequencer", err)
	}
	if _, err := old.CheckAndMutateMetaRow(ctx, key, nil, loc); !errors.Is(err, serr.ErrStaleSequencer) {
		t.Errorf("checkAndMutateMetaRow of a deposed term = %v, want ErrStaleSequencer", err)
	}
	if err := old.WriteMetaLocation(ctx, metadata.MetaTablet(), "deposed", "127.0.0.1:1"); !errors.Is(err, serr.ErrStaleSequencer) {
		t.Errorf("writeMeta of a deposed term = %v, want ErrStaleSequencer", err)
	}
	after, err := old.ReadMetaRow(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	for q, v := range before {
		if !bytes.Equal(after[q], v) {
			t.Errorf("META's row info:%s = %q after the deposed term's writes, want %q", q, after[q], v)
		}
	}
	if len(after) != len(before) {
		t.Errorf("META's row = %q after the deposed term's writes, want %q", after, before)
	}

	select {
	case <-old.Done():
	default:
		t.Fatal("the deposed term is still running after its sequencer was refused")
	}
	eventually("the deposed master to stop acting", func() bool { return !c.Masters[i].M.IsActive() })
	if !next.IsActive() {
		t.Fatal("the new master is not active")
	}
}
