package rpcerr

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

var (
	errA = errors.New("a")
	errB = errors.New("b")
)

func TestRoundTrip(t *testing.T) {
	tab := NewTable(Entry{errA, codes.NotFound, "A"}, Entry{errB, codes.InvalidArgument, "B"})
	tests := []struct {
		in       error
		code     codes.Code
		sentinel error
	}{
		{fmt.Errorf("ctx: %w", errA), codes.NotFound, errA},
		{errB, codes.InvalidArgument, errB},
		{fmt.Errorf("x: %w", context.Canceled), codes.Canceled, context.Canceled},
		{context.DeadlineExceeded, codes.DeadlineExceeded, context.DeadlineExceeded},
		{errors.New("bug"), codes.Internal, nil},
	}
	for _, tt := range tests {
		wire := tab.ToStatus(tt.in)
		if got := status.Code(wire); got != tt.code {
			t.Errorf("ToStatus(%v) code = %v, want %v", tt.in, got, tt.code)
		}
		back := tab.FromStatus(wire)
		if tt.sentinel != nil && !errors.Is(back, tt.sentinel) {
			t.Errorf("FromStatus(ToStatus(%v)) = %v, not Is %v", tt.in, back, tt.sentinel)
		}
		if status.Code(back) != tt.code {
			t.Errorf("FromStatus kept code %v, want %v", status.Code(back), tt.code)
		}
		if back.Error() != tt.in.Error() && tt.sentinel != nil && tt.code != codes.Canceled && tt.code != codes.DeadlineExceeded {
			t.Errorf("message %q, want %q", back.Error(), tt.in.Error())
		}
	}
	if tab.ToStatus(nil) != nil || tab.FromStatus(nil) != nil {
		t.Error("nil must stay nil")
	}
}
