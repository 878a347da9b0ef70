package enginebench

import "errors"

var (
	// ErrInvalidOptions is returned by Options.Validate and Run for a bad
	// option (non-positive row count, unknown workload ...).
	ErrInvalidOptions = errors.New("cellar/enginebench: invalid options")
	// ErrMismatch is returned by Run when an engine returns wrong data: a
	// written key not found, a missing key found, a wrong value, a scan out
	// of order or with the wrong row count. A benchmark of a wrong engine
	// is not a result.
	ErrMismatch = errors.New("cellar/enginebench: engine returned wrong data")
)
