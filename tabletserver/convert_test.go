package tabletserver

import (
	"bytes"
	"errors"
	"fmt"
	"testing"

	"google.golang.org/protobuf/proto"

	"cellar/internal/serr"
	datapb "cellar/proto/cellar/data/v1"
	tabletpb "cellar/proto/cellar/tablet/v1"
	"cellar/tablet"
)

// FuzzRequest: converting any decodable request never panics, and the
// segments of a row set are sorted and disjoint.
func FuzzRequest(f *testing.F) {
	seeds := []proto.Message{
		&tabletpb.MutateRowRequest{RowKey: []byte("r"), Mutations: []*datapb.Mutation{set("cf", "q", 1, "v"), {}, {Mutation: &datapb.Mutation_DeleteFromColumn_{}}}},
		&tabletpb.ReadRowsRequest{Rows: &datapb.RowSet{RowKeys: [][]byte{[]byte("a"), []byte("c")}, RowRanges: []*datapb.RowRange{{StartKey: []byte("b"), EndKey: []byte("d")}, {}}}},
		&datapb.TableSchema{Families: []*datapb.ColumnFamily{{Name: "f", GcRule: &datapb.GcRule{Rule: &datapb.GcRule_Union_{Union: &datapb.GcRule_Union{}}}}}},
	}
	for _, m := range seeds {
		b, err := proto.Marshal(m)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var mr tabletpb.MutateRowRequest
		if proto.Unmarshal(b, &mr) == nil {
			_, _ = mutations(mr.GetMutations())
			_, _ = writeOptions(mr.GetDurability())
		}
		var rr tabletpb.ReadRowsRequest
		if proto.Unmarshal(b, &rr) == nil {
			segs, err := segments(rr.GetRows())
			if err == nil {
				for i := 1; i < len(segs); i++ {
					prev := segs[i-1]
					if prev.end == nil || bytes.Compare(prev.end, segs[i].start) > 0 {
						t.Fatalf("segments overlap: %q..%q then %q", prev.start, prev.end, segs[i].start)
					}
				}
			}
		}
		var sch datapb.TableSchema
		if proto.Unmarshal(b, &sch) == nil {
			_, _ = FamiliesFromSchema(&sch)
		}
	})
}

// A tablet another server has opened (tablet.ErrFenced) answers
// NOT_SERVING, so clients drop their cached location and find the owner.
func TestTabletErrFencedIsNotServing(t *testing.T) {
	err := tabletErr(fmt.Errorf("cellar/tablet: flush: %w", tablet.ErrFenced))
	if !errors.Is(err, serr.ErrNotServing) || !errors.Is(err, tablet.ErrFenced) {
		t.Fatalf("tabletErr(fenced) = %v, want ErrNotServing wrapping ErrFenced", err)
	}
}
