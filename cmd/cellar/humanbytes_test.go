package main

import "testing"

func TestHumanBytesAndMemtableUse(t *testing.T) {
	for _, c := range []struct {
		n    int64
		want string
	}{
		{0, "0 B"}, {1023, "1023 B"}, {1024, "1.0 KiB"}, {1536, "1.5 KiB"},
		{64 << 20, "64.0 MiB"}, {1 << 30, "1.0 GiB"}, {5 << 40, "5.0 TiB"}, {3 << 50, "3.0 PiB"}, {1 << 62, "4096.0 PiB"},
	} {
		if got := humanBytes(c.n); got != c.want {
			t.Errorf("humanBytes(%d) = %q, want %q", c.n, got, c.want)
		}
	}
	if got := memtableUse(256<<20, 1<<30); got != "256.0 MiB of 1.0 GiB (25%)" {
		t.Errorf("memtableUse = %q", got)
	}
	if got := memtableUse(0, 0); got != "-" {
		t.Errorf("memtableUse with no status = %q, want -", got)
	}
}
