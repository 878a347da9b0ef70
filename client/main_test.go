package client

import (
	"testing"

	"go.uber.org/goleak"
)

// hashicorp/raft may leave a goroutine waiting on a VerifyLeader future
// after a replica stops (see lock's TestMain).
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.IgnoreAnyFunction("cellar/internal/raftutil.awaitFuture.func1"))
}
