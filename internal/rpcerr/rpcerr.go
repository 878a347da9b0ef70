// Package rpcerr converts Cellar's sentinel errors to gRPC statuses on the
// server and back to the same sentinels on the client, so that errors.Is
// works across the wire (STYLE.md, "Errors").
//
// Each service owns one Table listing its sentinels once, with the gRPC code
// and a stable reason string. The reason travels as an ErrorInfo detail
// (domain "cellar"); the client maps it back to the sentinel and keeps the
// server's message. Context cancellation and deadlines pass through as
// codes.Canceled / codes.DeadlineExceeded and come back as context.Canceled /
// context.DeadlineExceeded. Errors not in the table are codes.Internal on the
// wire (unless they already are a status).
//
// A Table is immutable after NewTable and safe for concurrent use.
package rpcerr

import (
	"context"
	"errors"
	"fmt"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Domain is the ErrorInfo domain of every Cellar status.
const Domain = "cellar"

// Entry maps one sentinel to its wire form.
type Entry struct {
	Err    error      // the sentinel, matched with errors.Is
	Code   codes.Code // the gRPC code on the wire
	Reason string     // stable, UPPER_SNAKE, unique within the table
}

// Table is an ordered list of entries; the first whose Err matches wins, so
// list more specific sentinels first.
type Table struct {
	entries  []Entry
	byReason map[string]Entry
}

// NewTable builds a table; it panics on a duplicate reason (a programmer
// error caught by any test that builds the table).
func NewTable(entries ...Entry) *Table {
	t := &Table{entries: entries, byReason: make(map[string]Entry, len(entries))}
	for _, e := range entries {
		if _, dup := t.byReason[e.Reason]; dup {
			panic("cellar/rpcerr: duplicate reason " + e.Reason)
		}
		t.byReason[e.Reason] = e
	}
	return t
}

// ToStatus converts err for returning from a gRPC handler. nil stays nil.
func (t *Table) ToStatus(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		if s, _ := status.FromError(err); s.Code() != codes.Unknown {
			return err
		}
	}
	switch {
	case errors.Is(err, context.Canceled):
		return status.Error(codes.Canceled, err.Error())
	case errors.Is(err, context.DeadlineExceeded):
		return status.Error(codes.DeadlineExceeded, err.Error())
	}
	for _, e := range t.entries {
		if errors.Is(err, e.Err) {
			s := status.New(e.Code, err.Error())
			if ds, derr := s.WithDetails(&errdetails.ErrorInfo{Domain: Domain, Reason: e.Reason}); derr == nil {
				s = ds
			}
			return s.Err()
		}
	}
	return status.Error(codes.Internal, err.Error())
}

// Reason returns the ErrorInfo reason of a status error, or "".
func Reason(err error) string {
	s, ok := status.FromError(err)
	if !ok {
		return ""
	}
	for _, d := range s.Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok && info.Domain == Domain {
			return info.Reason
		}
	}
	return ""
}

// wireError is a status error mapped back to a sentinel: errors.Is finds the
// sentinel, status.FromError still finds the status.
type wireError struct {
	sentinel error
	st       *status.Status
}

func (w *wireError) Error() string              { return w.st.Message() }
func (w *wireError) Unwrap() error              { return w.sentinel }
func (w *wireError) GRPCStatus() *status.Status { return w.st }

// FromStatus converts an error returned by a gRPC call back to the
// sentinel named by its reason. Other statuses are returned as they are,
// except Canceled / DeadlineExceeded, which wrap the context errors.
func (t *Table) FromStatus(err error) error {
	if err == nil {
		return nil
	}
	s, ok := status.FromError(err)
	if !ok {
		return err
	}
	if e, found := t.byReason[Reason(err)]; found {
		return &wireError{sentinel: e.Err, st: s}
	}
	switch s.Code() {
	case codes.Canceled:
		return &wireError{sentinel: context.Canceled, st: s}
	case codes.DeadlineExceeded:
		return &wireError{sentinel: context.DeadlineExceeded, st: s}
	}
	return err
}

// Code returns the gRPC code err would have on the wire.
func (t *Table) Code(err error) codes.Code { return status.Code(t.ToStatus(err)) }

// Errorf is fmt.Errorf for use in table-driven code that wants a sentinel
// with a message: Errorf(ErrX, "table %q", name).
func Errorf(sentinel error, format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{sentinel}, args...)...)
}
