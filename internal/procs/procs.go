// Package procs sets how many goroutines of a Cellar server process may run
// Go code at once (GOMAXPROCS).
//
// Cellar's servers spend much of their time in blocking disk syscalls:
// fdatasync on a chunk replica or a Raft log, pwritev of a packet. A
// goroutine in such a syscall keeps its P (one of GOMAXPROCS) until the
// runtime's monitor thread notices and hands the P to another thread, which
// on a busy process takes from tens of microseconds to milliseconds. With
// GOMAXPROCS equal to the core count (2 on the build machine) two replicas
// syncing at once leave no P for the goroutines that read the network, so a
// packet waits milliseconds between the socket and its handler while both
// cores are mostly idle. Measured with `go test ./dfs -bench
// AppendSync/record=64KiB/writers=8`, fanned out, on 2 cores: 56–62 MB/s
// with GOMAXPROCS 2, 99–130 MB/s with 32; the wait between a client sending
// a packet and a chunkserver's handler receiving it fell from 4 ms to
// under 1 ms.
//
// Raise lifts GOMAXPROCS to Floor for server processes and the
// benchmarks that run servers in-process. More Ps than cores costs little
// for such processes: the extra threads mostly sleep in syscalls.
package procs

import (
	"os"
	"runtime"
)

// Floor is the least GOMAXPROCS Raise sets.
const Floor = 8

// Raise sets GOMAXPROCS to at least Floor, unless the GOMAXPROCS
// environment variable is set (an operator's choice wins). It returns the
// value in effect and a function that puts back the value before the call
// (for a benchmark that also runs a peer in this process).
func Raise() (n int, restore func()) {
	cur := runtime.GOMAXPROCS(0)
	if _, set := os.LookupEnv("GOMAXPROCS"); set || cur >= Floor {
		return cur, func() {}
	}
	runtime.GOMAXPROCS(Floor)
	return Floor, func() { runtime.GOMAXPROCS(cur) }
}
