package client

import (
	"strconv"
	"time"
)

// Timestamp is a cell timestamp in microseconds since the Unix epoch.
type Timestamp int64

// ServerTime asks the tablet server to assign the timestamp when it applies
// the mutation. A mutation with a ServerTime Set is not idempotent and is
// never retried once sent (see ErrOutcomeUnknown).
const ServerTime Timestamp = -1

// Now is the current time truncated to microseconds.
func Now() Timestamp { return Time(time.Now()) }

// Time converts t to a Timestamp (microseconds; sub-microsecond precision
// is dropped).
func Time(t time.Time) Timestamp { return Timestamp(t.UnixMicro()) }

// Time converts ts to a time.Time (ServerTime has no time: it returns the
// zero time).
func (ts Timestamp) Time() time.Time {
	if ts < 0 {
		return time.Time{}
	}
	return time.UnixMicro(int64(ts))
}

// TruncateToMilliseconds rounds ts down to a whole millisecond, as Cloud
// Bigtable's tables require; Cellar accepts microseconds.
func (ts Timestamp) TruncateToMilliseconds() Timestamp {
	if ts < 0 {
		return ts
	}
	return ts - ts%1000
}

func (ts Timestamp) String() string {
	if ts == ServerTime {
		return "servertime"
	}
	return strconv.FormatInt(int64(ts), 10) + "µs"
}
