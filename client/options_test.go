package client

import (
	"errors"
	"testing"
)

func TestParseDurability(t *testing.T) {
	for _, d := range []Durability{Sync, Async, SkipLog} {
		got, err := ParseDurability(d.String())
		if err != nil || got != d {
			t.Errorf("ParseDurability(%q) = %v, %v; want %v", d.String(), got, err, d)
		}
	}
	if got, err := ParseDurability("skip-log"); err != nil || got != SkipLog {
		t.Errorf("ParseDurability(skip-log) = %v, %v; want skiplog", got, err)
	}
	for _, bad := range []string{"", "SYNC", "fsync"} {
		if _, err := ParseDurability(bad); !errors.Is(err, ErrInvalidArgument) {
			t.Errorf("ParseDurability(%q) error = %v; want ErrInvalidArgument", bad, err)
		}
	}
}
