package clock

import (
	"testing"
	"time"
)

func TestFakeFiresInOrder(t *testing.T) {
	f := NewFake(time.Unix(0, 0))
	a := f.NewTimer(2 * time.Second)
	b := f.After(time.Second)
	f.Advance(1500 * time.Millisecond)
	select {
	case <-b:
	default:
		t.Fatal("1s timer did not fire after 1.5s")
	}
	select {
	case <-a.C():
		t.Fatal("2s timer fired after 1.5s")
	default:
	}
	if !a.Stop() {
		t.Fatal("Stop of an armed timer returned false")
	}
	f.Advance(time.Hour)
	select {
	case <-a.C():
		t.Fatal("stopped timer fired")
	default:
	}
	a.Reset(time.Second)
	f.Advance(time.Second)
	if got := <-a.C(); !got.Equal(time.Unix(0, 0).Add(time.Hour + 2500*time.Millisecond)) {
		t.Fatalf("reset timer fired at %v", got)
	}
}
