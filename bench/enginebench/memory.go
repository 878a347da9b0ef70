package enginebench

import (
	"bufio"
	"bytes"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
)

// procStatus reads "kB" fields (VmHWM, VmRSS) of one reading of
// /proc/self/status, in bytes, returning the largest; ok is false where
// there is no such file or field.
func procStatus(fields ...string) (int64, bool) {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, false
	}
	var best int64
	found := false
	for _, f := range fields {
		if v, ok := statusField(b, f); ok {
			best, found = max(best, v), true
		}
	}
	return best, found
}

func statusField(b []byte, field string) (int64, bool) {
	sc := bufio.NewScanner(bytes.NewReader(b))
	prefix := []byte(field + ":")
	for sc.Scan() {
		line := sc.Bytes()
		if !bytes.HasPrefix(line, prefix) {
			continue
		}
		f := bytes.Fields(line[len(prefix):])
		if len(f) != 2 || string(f[1]) != "kB" {
			return 0, false
		}
		kb, err := strconv.ParseInt(string(f[0]), 10, 64)
		if err != nil {
			return 0, false
		}
		return kb << 10, true
	}
	return 0, false
}

// PeakRSS is the process's peak resident set size in bytes since it started
// or since the last ResetPeakRSS (VmHWM, or VmRSS if that is larger: the
// kernel folds per-thread counters into VmHWM lazily); ok is false where
// unknown.
func PeakRSS() (int64, bool) { return procStatus("VmHWM", "VmRSS") }

// CurrentRSS is the process's resident set size in bytes (VmRSS).
func CurrentRSS() (int64, bool) { return procStatus("VmRSS") }

// ResetPeakRSS collects garbage, returns free memory to the OS and resets
// the kernel's peak-RSS mark to the current RSS (Linux 4.0+). It reports
// whether the reset happened; if not, PeakRSS keeps counting from process
// start.
func ResetPeakRSS() bool {
	runtime.GC()
	debug.FreeOSMemory()
	return os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) == nil
}

// GCSettings returns the Go collector's GOGC percentage (negative = off)
// and memory limit in bytes (math.MaxInt64 = none), which bound how far the
// Go heap grows beyond its live data between collections.
func GCSettings() (gcPercent int, memoryLimit int64) {
	gcPercent = debug.SetGCPercent(100)
	debug.SetGCPercent(gcPercent)
	return gcPercent, debug.SetMemoryLimit(-1)
}
