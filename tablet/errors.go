package tablet

import "errors"

// Sentinel errors. Every error a Tablet returns for one of these conditions
// wraps the sentinel; test with errors.Is. Limit and validation errors wrap
// keys.ErrLimit (a *keys.LimitError) or keys.ErrInvalid.
var (
	// ErrUnknownFamily: a mutation or read names a family not in the schema.
	ErrUnknownFamily = errors.New("cellar/tablet: unknown column family")
	// ErrRowOutOfRange: Apply or ReadRow of a row outside [StartRow, EndRow),
	// or a split row outside the tablet's range.
	ErrRowOutOfRange = errors.New("cellar/tablet: row outside the tablet's range")
	// ErrClosed: use of a Tablet after Close (or after a Split, which closes
	// the parent).
	ErrClosed = errors.New("cellar/tablet: tablet closed")
	// ErrInvalidOptions: Options.Validate failed.
	ErrInvalidOptions = errors.New("cellar/tablet: invalid options")
	// ErrCorrupt: a manifest or a commit-log batch failed to decode. Never
	// retried.
	ErrCorrupt = errors.New("cellar/tablet: corrupt data")
	// ErrBackground: a background flush or compaction failed; the tablet
	// refuses further writes (its memtables still hold the data, and the
	// commit log still holds everything not flushed, so reopening recovers).
	ErrBackground = errors.New("cellar/tablet: background flush or compaction failed")
	// ErrSplit: Open of a tablet that was split; its daughters own its data
	// now, and opening it again could delete files they reference.
	ErrSplit = errors.New("cellar/tablet: tablet was split")
	// ErrNoSplitKey: SplitKey found no row strictly inside the tablet's
	// range to split at (the tablet is empty or holds a single row).
	ErrNoSplitKey = errors.New("cellar/tablet: no split key")
	// ErrFenced: another server opened the tablet (took a higher epoch of
	// its directory) since this Tablet did; it writes no more manifests
	// and deletes no files, and refuses writes. Also Open's error when
	// racing openers kept taking every epoch it tried.
	ErrFenced = errors.New("cellar/tablet: fenced: another server opened the tablet")
)
