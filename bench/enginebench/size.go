package enginebench

import (
	"fmt"
	"strconv"
	"strings"
)

// ParseSize parses a byte count such as "1000", "64MiB", "256 MiB", "4KiB",
// "1GiB" or "1.5GiB" (binary suffixes KiB, MiB, GiB, and K, M, G as their
// shorthands). It is for command-line flags; errors wrap ErrInvalidOptions.
func ParseSize(s string) (int64, error) {
	t := strings.TrimSpace(s)
	mult := int64(1)
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"K", 1 << 10}, {"M", 1 << 20}, {"G", 1 << 30}, {"B", 1}} {
		if strings.HasSuffix(t, u.suffix) {
			t, mult = strings.TrimSpace(strings.TrimSuffix(t, u.suffix)), u.mult
			break
		}
	}
	f, err := strconv.ParseFloat(t, 64)
	if err != nil || f < 0 || f*float64(mult) > 1<<50 {
		return 0, fmt.Errorf("%w: size %q (want a number of bytes such as 1000, 64MiB, 1GiB)", ErrInvalidOptions, s)
	}
	return int64(f * float64(mult)), nil
}

// FormatSize writes a byte count the way ParseSize reads it, in the largest
// binary unit that divides it.
func FormatSize(n int64) string {
	switch {
	case n != 0 && n%(1<<30) == 0:
		return fmt.Sprintf("%dGiB", n>>30)
	case n != 0 && n%(1<<20) == 0:
		return fmt.Sprintf("%dMiB", n>>20)
	case n != 0 && n%(1<<10) == 0:
		return fmt.Sprintf("%dKiB", n>>10)
	}
	return fmt.Sprintf("%dB", n)
}

// ParseOverhead parses the memory-overhead flag of the engine benchmarks
// (CellarOptions.MemoryOverhead): "" or "auto" for the default, "none" for
// no Go memory limit, otherwise a positive size as ParseSize reads it.
func ParseOverhead(s string) (int64, error) {
	switch strings.TrimSpace(s) {
	case "", "auto":
		return 0, nil
	case "none":
		return -1, nil
	}
	n, err := ParseSize(s)
	if err == nil && n == 0 {
		err = fmt.Errorf("%w: memory overhead %q must be positive (or none, auto)", ErrInvalidOptions, s)
	}
	return n, err
}
