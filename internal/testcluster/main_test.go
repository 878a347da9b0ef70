package testcluster_test

import (
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// hashicorp/raft's and go-metrics' package-level goroutines.
		goleak.IgnoreAnyFunction("github.com/hashicorp/go-metrics.(*InmemSink).run"),
		goleak.IgnoreAnyFunction("github.com/armon/go-metrics.(*InmemSink).run"),
	)
}
