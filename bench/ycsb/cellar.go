package ycsb

import (
	"context"
	"errors"
)

// ErrCellarNotWired is returned by the placeholder Cellar system's Open.
var ErrCellarNotWired = errors.New("cellar/ycsb: cellar system not wired yet")

// NewCellarSystem returns the Cellar system for a running cluster whose lock
// service listens on lockAddrs.
//
// Placeholder: this file is replaced by the real implementation on Cellar's
// client package; until then Open returns ErrCellarNotWired.
func NewCellarSystem(lockAddrs []string) System { return cellarStub{} }

type cellarStub struct{}

func (cellarStub) Name() string                     { return "cellar" }
func (cellarStub) Open(context.Context) (DB, error) { return nil, ErrCellarNotWired }
func (cellarStub) Close() error                     { return nil }
