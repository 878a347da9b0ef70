package procs

import (
	"os"
	"runtime"
	"testing"
)

func TestRaise(t *testing.T) {
	if v, ok := os.LookupEnv("GOMAXPROCS"); ok {
		t.Cleanup(func() { os.Setenv("GOMAXPROCS", v) })
		os.Unsetenv("GOMAXPROCS")
	}
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(0))
	runtime.GOMAXPROCS(2)
	n, restore := Raise()
	if n != Floor || runtime.GOMAXPROCS(0) != Floor {
		t.Fatalf("Raise() = %d, GOMAXPROCS %d; want %d", n, runtime.GOMAXPROCS(0), Floor)
	}
	restore()
	if got := runtime.GOMAXPROCS(0); got != 2 {
		t.Fatalf("after restore GOMAXPROCS = %d, want 2", got)
	}

	// Already above the floor: left alone.
	runtime.GOMAXPROCS(Floor + 4)
	if n, restore := Raise(); n != Floor+4 || runtime.GOMAXPROCS(0) != Floor+4 {
		t.Fatalf("Raise() above the floor = %d, GOMAXPROCS %d; want %d untouched", n, runtime.GOMAXPROCS(0), Floor+4)
	} else {
		restore()
	}

	// The operator's GOMAXPROCS wins.
	t.Setenv("GOMAXPROCS", "2")
	runtime.GOMAXPROCS(2)
	if n, _ := Raise(); n != 2 || runtime.GOMAXPROCS(0) != 2 {
		t.Fatalf("Raise() with GOMAXPROCS=2 set = %d, GOMAXPROCS %d; want 2 untouched", n, runtime.GOMAXPROCS(0))
	}
}
