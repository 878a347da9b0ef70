package client

import (
	"bytes"
	"slices"

	tabletpb "cellar/proto/cellar/tablet/v1"
)

// sortedSamples orders a server's samples by key, the end of table ("")
// last.
func sortedSamples(in []*tabletpb.SampleRowKeysResponse_Sample) []*tabletpb.SampleRowKeysResponse_Sample {
	out := slices.Clone(in)
	slices.SortStableFunc(out, func(a, b *tabletpb.SampleRowKeysResponse_Sample) int {
		switch {
		case len(a.RowKey) == 0 && len(b.RowKey) == 0:
			return 0
		case len(a.RowKey) == 0:
			return 1
		case len(b.RowKey) == 0:
			return -1
		}
		return bytes.Compare(a.RowKey, b.RowKey)
	})
	return out
}
