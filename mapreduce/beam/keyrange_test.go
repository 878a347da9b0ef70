package cellarbeam

import (
	"bytes"
	"errors"
	"testing"
)

func TestKeyRangeTracker_ClaimsInOrderAndStopsAtEnd(t *testing.T) {
	tr := NewKeyRangeTracker(KeyRange{Start: []byte("b"), End: []byte("m")})
	for _, k := range []string{"b", "c", "c\x00", "l\xff"} {
		if !tr.TryClaim(k) {
			t.Fatalf("TryClaim(%q) = false: %v", k, tr.GetError())
		}
	}
	if tr.IsDone() {
		t.Fatal("done before the end was claimed")
	}
	if tr.TryClaim("m") || !tr.IsDone() || tr.GetError() != nil {
		t.Fatalf("claim at the end: done=%v err=%v, want done without error", tr.IsDone(), tr.GetError())
	}

	tr = NewKeyRangeTracker(KeyRange{Start: []byte("b")})
	tr.TryClaim("x")
	if tr.TryClaim("c") || !errors.Is(tr.GetError(), ErrClaimOrder) || tr.IsDone() {
		t.Fatalf("claim out of order: err=%v", tr.GetError())
	}
	tr = NewKeyRangeTracker(KeyRange{Start: []byte("b")})
	if tr.TryClaim("zzz") && !tr.TryClaim(EndOfRange{}) && tr.IsDone() {
		return
	}
	t.Fatal("EndOfRange did not finish an unbounded range")
}

func TestKeyRangeTracker_Split(t *testing.T) {
	// Checkpoint: the residual is everything after the last claimed key.
	tr := NewKeyRangeTracker(KeyRange{Start: []byte("a"), End: []byte("z")})
	tr.TryClaim("c")
	p, r, err := tr.TrySplit(0)
	if err != nil || !tr.IsDone() {
		t.Fatalf("checkpoint: %v done=%v", err, tr.IsDone())
	}
	if pr, rr := p.(KeyRange), r.(KeyRange); !bytes.Equal(pr.End, []byte("c\x00")) || !bytes.Equal(rr.Start, []byte("c\x00")) || !bytes.Equal(rr.End, []byte("z")) {
		t.Fatalf("checkpoint split = %v / %v", pr, rr)
	}

	// Half of the rest: the split key lies strictly between the next
	// claimable key and the end, and claims beyond it stop the scan.
	for _, end := range [][]byte{[]byte("r9000"), nil} {
		tr = NewKeyRangeTracker(KeyRange{Start: []byte("r0000"), End: end})
		tr.TryClaim("r1000")
		p, r, err = tr.TrySplit(0.5)
		if err != nil || r == nil {
			t.Fatalf("end %q: no split: %v", end, err)
		}
		pr, rr := p.(KeyRange), r.(KeyRange)
		if bytes.Compare(pr.End, []byte("r1000\x00")) <= 0 || (end != nil && bytes.Compare(pr.End, end) >= 0) || !bytes.Equal(pr.End, rr.Start) || !bytes.Equal(rr.End, end) {
			t.Fatalf("end %q: split = %v / %v", end, pr, rr)
		}
		if tr.TryClaim(rr.Start) || !tr.IsDone() {
			t.Fatalf("end %q: the residual's first key was claimable in the primary", end)
		}
	}

	// No room: adjacent keys cannot be split.
	tr = NewKeyRangeTracker(KeyRange{Start: []byte("a"), End: []byte("a\x00")})
	if _, r, _ := tr.TrySplit(0.5); r != nil {
		t.Fatalf("split of a one-key range: %v", r)
	}
}

func TestKeyRangeTracker_Progress(t *testing.T) {
	tr := NewKeyRangeTracker(KeyRange{Start: []byte{0x00}, End: []byte{0x80}})
	if d, r := tr.GetProgress(); d != 0 || r != 1 {
		t.Fatalf("progress before any claim = %v, %v", d, r)
	}
	tr.TryClaim([]byte{0x40})
	if d, r := tr.GetProgress(); d < 0.49 || d > 0.51 || d+r != 1 {
		t.Fatalf("progress half way = %v, %v", d, r)
	}
}
