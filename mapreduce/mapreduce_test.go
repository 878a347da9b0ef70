package mapreduce_test

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"iter"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"cellar/dfs"
	"cellar/dfs/local"
	"cellar/dfs/memfs"
	"cellar/mapreduce"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var seedFlag = flag.Uint64("seed", 0, "seed for randomized tests (0 = from the clock)")

// testRand returns a seeded generator and logs the seed for replay.
func testRand(t testing.TB) *rand.Rand {
	t.Helper()
	s := *seedFlag
	if s == 0 {
		s = uint64(time.Now().UnixNano())
	}
	t.Logf("seed %d (replay with -seed %d)", s, s)
	return rand.New(rand.NewPCG(s, s^0x9e3779b97f4a7c15))
}

// corpus is generated text input and what a word count must find in it.
type corpus struct {
	files []string
	lines int64
	words int64
	count map[string]int64
	// order lists, per word, "file:line:pos" of each occurrence in input
	// order (files in order, then lines, then position in the line).
	order map[string][]string
}

func writeFile(t testing.TB, fs dfs.FS, name string, data []byte) {
	t.Helper()
	f, err := fs.Create(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// genCorpus writes nfiles text files under dir of nlines lines each, words
// drawn from a skewed vocabulary of vocab words.
func genCorpus(t testing.TB, rng *rand.Rand, fs dfs.FS, dir string, nfiles, nlines, vocab int) *corpus {
	t.Helper()
	c := &corpus{count: map[string]int64{}, order: map[string][]string{}}
	for f := range nfiles {
		name := dfs.Join(dir, fmt.Sprintf("in-%03d.txt", f))
		var b bytes.Buffer
		for l := range nlines {
			n := rng.IntN(12)
			for w := range n {
				// Skewed: low word numbers are much more frequent.
				word := fmt.Sprintf("w%d", rng.IntN(rng.IntN(vocab)+1))
				if w > 0 {
					b.WriteByte(' ')
				}
				b.WriteString(word)
				c.count[word]++
				c.words++
				c.order[word] = append(c.order[word], fmt.Sprintf("%d:%d:%d", f, l, w))
			}
			b.WriteByte('\n')
			c.lines++
		}
		writeFile(t, fs, name, b.Bytes())
		c.files = append(c.files, name)
	}
	return c
}

var one = []byte("1") // Emit copies, so one slice serves every call

func wcMap(ctx context.Context, rec mapreduce.Record, emit mapreduce.Emit) error {
	for w := range bytes.FieldsSeq(rec.Value) {
		if err := emit(w, one); err != nil {
			return err
		}
	}
	return nil
}

// wcSum is the reducer and combiner: the sum of decimal counts.
func wcSum(ctx context.Context, key []byte, values iter.Seq[[]byte], emit mapreduce.Emit) error {
	var n int64
	for v := range values {
		x, err := strconv.ParseInt(string(v), 10, 64)
		if err != nil {
			return err
		}
		n += x
	}
	return emit(key, strconv.AppendInt(nil, n, 10))
}

func wordCount(fs dfs.FS, in, out string, reducers int, combine bool) mapreduce.Job {
	j := mapreduce.Job{
		Name:        "wordcount",
		Input:       mapreduce.FileInput{FS: fs, Paths: []string{in}, SplitSize: 4 << 10},
		Map:         wcMap,
		Reduce:      wcSum,
		NumReducers: reducers,
		Output:      mapreduce.FileOutput{FS: fs, Dir: out},
	}
	if combine {
		j.Combine = wcSum
	}
	return j
}

// readParts returns each part file's bytes and the parsed word counts.
func readParts(t testing.TB, fs dfs.FS, dir string, reducers int) ([][]byte, map[string]int64) {
	t.Helper()
	ctx := context.Background()
	if _, err := fs.Stat(ctx, dfs.Join(dir, mapreduce.SuccessFile)); err != nil {
		t.Fatalf("no success marker: %v", err)
	}
	ents, err := fs.List(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) != reducers+1 {
		t.Fatalf("output holds %d entries, want %d parts + %s: %v", len(ents), reducers, mapreduce.SuccessFile, ents)
	}
	var parts [][]byte
	counts := map[string]int64{}
	for p := range reducers {
		data := readAll(t, fs, mapreduce.FileOutput{Dir: dir}.PartName(p))
		parts = append(parts, data)
		prev := ""
		for line := range strings.Lines(string(data)) {
			k, v, ok := strings.Cut(strings.TrimSuffix(line, "\n"), "\t")
			if !ok {
				t.Fatalf("part %d: bad line %q", p, line)
			}
			if k <= prev {
				t.Fatalf("part %d: key %q after %q: not sorted or duplicated", p, k, prev)
			}
			prev = k
			if _, dup := counts[k]; dup {
				t.Fatalf("key %q in two partitions", k)
			}
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				t.Fatalf("part %d: %q: %v", p, line, err)
			}
			counts[k] = n
		}
	}
	return parts, counts
}

func readAll(t testing.TB, fs dfs.FS, name string) []byte {
	t.Helper()
	f, err := fs.Open(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, f.Size())
	if _, err := f.ReadAt(b, 0); err != nil && f.Size() > 0 {
		t.Fatal(err)
	}
	return b
}

func checkCounts(t *testing.T, got, want map[string]int64) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%d distinct words, want %d", len(got), len(want))
	}
	for w, n := range want {
		if got[w] != n {
			t.Errorf("count[%q] = %d, want %d", w, got[w], n)
		}
	}
}

func quiet() *mapreduce.RunOptions {
	return &mapreduce.RunOptions{Logger: discardLogger}
}

func TestWordCountExactCounts(t *testing.T) {
	rng := testRand(t)
	// Both file system implementations: local files and memory.
	for _, name := range []string{"memfs", "local"} {
		t.Run(name, func(t *testing.T) {
			var fs dfs.FS = memfs.New()
			if name == "local" {
				l, err := local.Open(t.TempDir())
				if err != nil {
					t.Fatal(err)
				}
				fs = l
			}
			c := genCorpus(t, rng, fs, "in", 5, 400, 300)
			opts := quiet()
			opts.TempDir = t.TempDir()
			res, err := mapreduce.Run(context.Background(), wordCount(fs, "in", "out", 3, false), opts)
			if err != nil {
				t.Fatal(err)
			}
			_, got := readParts(t, fs, "out", 3)
			checkCounts(t, got, c.count)
			if res.MapInputRecords != c.lines || res.MapOutputRecords != c.words {
				t.Errorf("map input/output records = %d/%d, want %d/%d", res.MapInputRecords, res.MapOutputRecords, c.lines, c.words)
			}
			if res.ReduceInputGroups != int64(len(c.count)) || res.OutputRecords != int64(len(c.count)) || res.ReduceInputRecords != c.words {
				t.Errorf("reduce groups/input/output = %d/%d/%d, want %d/%d/%d", res.ReduceInputGroups, res.ReduceInputRecords,
					res.OutputRecords, len(c.count), c.words, len(c.count))
			}
			if res.Splits < 5 {
				t.Errorf("%d splits for 5 files", res.Splits)
			}
			if res.Spills != 0 || res.FailedMapAttempts != 0 || res.MapAttempts != int64(res.Splits) || res.ReduceAttempts != 3 {
				t.Errorf("unexpected counters %+v", res.Counters)
			}
		})
	}
}

// orderJob emits, for each word, where it occurred; the reducer writes the
// values joined in the order it received them, exposing the value order.
func orderJob(fs dfs.FS, in, out string, reducers int) mapreduce.Job {
	return mapreduce.Job{
		Input: mapreduce.FileInput{FS: fs, Paths: []string{in}, SplitSize: 1 << 10},
		Map: func(ctx context.Context, rec mapreduce.Record, emit mapreduce.Emit) error {
			for i, w := range bytes.Fields(rec.Value) {
				if err := emit(w, fmt.Appendf(nil, "%s:%d", rec.Key, i)); err != nil {
					return err
				}
			}
			return nil
		},
		Reduce: func(ctx context.Context, key []byte, values iter.Seq[[]byte], emit mapreduce.Emit) error {
			var b []byte
			for v := range values {
				b = append(b, v...)
				b = append(b, ',')
			}
			return emit(key, b)
		},
		NumReducers: reducers,
		Output:      mapreduce.FileOutput{FS: fs, Dir: out},
	}
}

func TestOutputIdenticalWhateverWorkersAndBudget(t *testing.T) {
	rng := testRand(t)
	fs := memfs.New()
	genCorpus(t, rng, fs, "in", 5, 200, 200)
	var want [][]byte
	for i, cfg := range []mapreduce.RunOptions{
		{Workers: 1},
		{Workers: 8},
		{Workers: 8, MemoryBudget: 4 << 10, MergeFactor: 4},
		{Workers: 3, MemoryBudget: 4 << 10},
	} {
		out := fmt.Sprintf("out%d", i)
		cfg.Logger, cfg.TempDir = discardLogger, t.TempDir()
		res, err := mapreduce.Run(context.Background(), orderJob(fs, "in", out, 4), &cfg)
		if err != nil {
			t.Fatal(err)
		}
		var parts [][]byte
		for p := range 4 {
			parts = append(parts, readAll(t, fs, mapreduce.FileOutput{Dir: out}.PartName(p)))
		}
		if cfg.MemoryBudget != 0 && res.Spills == 0 {
			t.Errorf("config %d: budget %d bytes did not spill", i, cfg.MemoryBudget)
		}
		if want == nil {
			want = parts
			continue
		}
		for p := range parts {
			if !bytes.Equal(parts[p], want[p]) {
				t.Errorf("config %+v: part %d differs from Workers=1 (%d vs %d bytes)", cfg, p, len(parts[p]), len(want[p]))
			}
		}
	}
}

// TestReduceValueOrder checks the documented order: values by map task
// index, then emission order, i.e. input order for FileInput.
func TestReduceValueOrder(t *testing.T) {
	rng := testRand(t)
	fs := memfs.New()
	c := genCorpus(t, rng, fs, "in", 3, 200, 50)
	j := orderJob(fs, "in", "out", 2)
	// The positions as the corpus numbers them (file:line:word) are
	// checked through a map that translates offsets back to lines.
	type pos struct{ file, off string }
	lineOf := map[pos]int{}
	for f, name := range c.files {
		data := readAll(t, fs, name)
		off := 0
		for l, line := range strings.SplitAfter(string(data), "\n") {
			if line == "" {
				continue
			}
			lineOf[pos{fmt.Sprint(f), strconv.Itoa(off)}] = l
			off += len(line)
		}
	}
	// Tag each value with the file index, which FileInput does not give.
	inner := j.Map
	var splitFile []int
	splits, err := j.Input.Splits(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range splits {
		for f, name := range c.files {
			if strings.Contains(s.Description(), name+" ") {
				splitFile = append(splitFile, f)
			}
		}
	}
	j.Map = func(ctx context.Context, rec mapreduce.Record, emit mapreduce.Emit) error {
		ti, _ := mapreduce.TaskFromContext(ctx)
		return inner(ctx, rec, func(k, v []byte) error {
			return emit(k, fmt.Appendf(nil, "%d:%s", splitFile[ti.Task], v))
		})
	}
	opts := quiet()
	opts.Workers, opts.MemoryBudget, opts.TempDir = 4, 1<<10, t.TempDir()
	if _, err := mapreduce.Run(context.Background(), j, opts); err != nil {
		t.Fatal(err)
	}
	for p := range 2 {
		for line := range strings.Lines(string(readAll(t, fs, mapreduce.FileOutput{Dir: "out"}.PartName(p)))) {
			k, v, _ := strings.Cut(strings.TrimSuffix(line, "\n"), "\t")
			var got []string
			for _, e := range strings.Split(strings.TrimSuffix(v, ","), ",") {
				f, rest, _ := strings.Cut(e, ":")
				off, w, _ := strings.Cut(rest, ":")
				got = append(got, fmt.Sprintf("%s:%d:%s", f, lineOf[pos{f, off}], w))
			}
			if want := c.order[k]; strings.Join(got, ",") != strings.Join(want, ",") {
				t.Fatalf("values of %q in order %v, want %v", k, got, want)
			}
		}
	}
}

func TestTinyMemoryBudgetSpillsAndIsCorrect(t *testing.T) {
	rng := testRand(t)
	fs := memfs.New()
	c := genCorpus(t, rng, fs, "in", 4, 300, 400)
	for _, combine := range []bool{false, true} {
		t.Run(fmt.Sprintf("combine=%v", combine), func(t *testing.T) {
			out := fmt.Sprintf("out-%v", combine)
			opts := quiet()
			opts.Workers, opts.MemoryBudget, opts.MergeFactor, opts.TempDir = 4, 4<<10, 4, t.TempDir()
			res, err := mapreduce.Run(context.Background(), wordCount(fs, "in", out, 3, combine), opts)
			if err != nil {
				t.Fatal(err)
			}
			_, got := readParts(t, fs, out, 3)
			checkCounts(t, got, c.count)
			if res.Spills < 10 || res.SpilledBytes == 0 {
				t.Errorf("Spills = %d, SpilledBytes = %d: a 4 KiB budget should spill many runs", res.Spills, res.SpilledBytes)
			}
		})
	}
}

func TestCombinerReducesShuffleBytes(t *testing.T) {
	rng := testRand(t)
	fs := memfs.New()
	genCorpus(t, rng, fs, "in", 4, 500, 100)
	var outs [2][][]byte
	var results [2]mapreduce.Result
	for i, combine := range []bool{false, true} {
		out := fmt.Sprintf("out%d", i)
		opts := quiet()
		opts.TempDir = t.TempDir()
		res, err := mapreduce.Run(context.Background(), wordCount(fs, "in", out, 2, combine), opts)
		if err != nil {
			t.Fatal(err)
		}
		outs[i], _ = readParts(t, fs, out, 2)
		results[i] = res
	}
	for p := range outs[0] {
		if !bytes.Equal(outs[0][p], outs[1][p]) {
			t.Errorf("part %d differs with the combiner", p)
		}
	}
	plain, comb := results[0], results[1]
	if comb.ShuffleBytes >= plain.ShuffleBytes/2 {
		t.Errorf("ShuffleBytes %d with combiner, %d without: want well under half", comb.ShuffleBytes, plain.ShuffleBytes)
	}
	if comb.CombineInputRecords != comb.MapOutputRecords || comb.CombineOutputRecords >= comb.CombineInputRecords {
		t.Errorf("combine in/out = %d/%d for %d map output records", comb.CombineInputRecords, comb.CombineOutputRecords, comb.MapOutputRecords)
	}
	if comb.ReduceInputRecords != comb.CombineOutputRecords || plain.CombineInputRecords != 0 {
		t.Errorf("reduce input %d, combine output %d, plain combine input %d", comb.ReduceInputRecords, comb.CombineOutputRecords, plain.CombineInputRecords)
	}
}

var errInjected = errors.New("injected failure")

// TestFailedAttemptOutputDiscarded fails (or panics in) one attempt of a map
// or reduce task after it emitted output; the retry must succeed and the
// output must hold nothing twice.
func TestFailedAttemptOutputDiscarded(t *testing.T) {
	rng := testRand(t)
	fs := memfs.New()
	c := genCorpus(t, rng, fs, "in", 4, 300, 150)
	for _, tc := range []struct {
		name   string
		phase  mapreduce.Phase
		panics bool
		budget int64
	}{
		{"map-error", mapreduce.PhaseMap, false, 0},
		{"map-panic", mapreduce.PhaseMap, true, 0},
		{"map-error-after-spills", mapreduce.PhaseMap, false, 4 << 10},
		{"reduce-error", mapreduce.PhaseReduce, false, 0},
		{"reduce-panic", mapreduce.PhaseReduce, true, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := "out-" + tc.name
			j := wordCount(fs, "in", out, 3, false)
			fail := func(ctx context.Context, n int) error {
				ti, _ := mapreduce.TaskFromContext(ctx)
				at := 60 // map: input records of the attempt, enough to spill 4 KiB
				if ti.Phase == mapreduce.PhaseReduce {
					at = 20 // reduce: keys of the attempt
				}
				if ti.Phase == tc.phase && ti.Task == 1 && ti.Attempt <= 2 && n == at {
					if tc.panics {
						panic("injected panic")
					}
					return errInjected
				}
				return nil
			}
			var mapCalls sync.Map // task attempt -> *atomic.Int64
			j.Map = func(ctx context.Context, rec mapreduce.Record, emit mapreduce.Emit) error {
				ti, _ := mapreduce.TaskFromContext(ctx)
				v, _ := mapCalls.LoadOrStore(ti, new(atomic.Int64))
				if err := wcMap(ctx, rec, emit); err != nil { // emit first
					return err
				}
				return fail(ctx, int(v.(*atomic.Int64).Add(1)))
			}
			var reduceCalls sync.Map // task attempt -> *atomic.Int64
			j.Reduce = func(ctx context.Context, key []byte, values iter.Seq[[]byte], emit mapreduce.Emit) error {
				if err := wcSum(ctx, key, values, emit); err != nil { // write first
					return err
				}
				ti, _ := mapreduce.TaskFromContext(ctx)
				v, _ := reduceCalls.LoadOrStore(ti, new(atomic.Int64))
				return fail(ctx, int(v.(*atomic.Int64).Add(1)))
			}
			opts := quiet()
			opts.Workers, opts.MemoryBudget, opts.TempDir = 4, tc.budget, t.TempDir()
			var last mapreduce.Progress
			opts.Progress = func(p mapreduce.Progress) { last = p }
			res, err := mapreduce.Run(context.Background(), j, opts)
			if err != nil {
				t.Fatal(err)
			}
			_, got := readParts(t, fs, out, 3)
			checkCounts(t, got, c.count)
			failed := res.FailedMapAttempts
			if tc.phase == mapreduce.PhaseReduce {
				failed = res.FailedReduceAttempts
			}
			if failed != 2 {
				t.Errorf("%d failed %s attempts, want 2", failed, tc.phase)
			}
			// Progress counts the spills of every attempt, the counters
			// only those of succeeded ones: the failed attempts spilled.
			if tc.budget != 0 && last.Spills <= res.Spills {
				t.Errorf("progress spills %d, counter spills %d: the failed attempts did not spill", last.Spills, res.Spills)
			}
			if res.MapInputRecords != c.lines || res.OutputRecords != int64(len(c.count)) {
				t.Errorf("counters count failed attempts: %+v", res.Counters)
			}
		})
	}
}

func TestAlwaysFailingTaskNamesTaskAndRecord(t *testing.T) {
	fs := memfs.New()
	writeFile(t, fs, "in/a.txt", []byte("alpha\nbeta\n"))
	writeFile(t, fs, "in/b.txt", []byte("gamma\ndelta\nbad line\nomega\n"))
	for _, tc := range []struct {
		name   string
		panics bool
		phase  mapreduce.Phase
	}{{"map-error", false, mapreduce.PhaseMap}, {"map-panic", true, mapreduce.PhaseMap}, {"reduce-error", false, mapreduce.PhaseReduce}} {
		t.Run(tc.name, func(t *testing.T) {
			out := "out-" + tc.name
			j := wordCount(fs, "in", out, 2, false)
			j.Map = func(ctx context.Context, rec mapreduce.Record, emit mapreduce.Emit) error {
				if tc.phase == mapreduce.PhaseMap && string(rec.Value) == "bad line" {
					if tc.panics {
						var m map[string]int
						m["x"]++ // a real runtime panic
					}
					return errInjected
				}
				return wcMap(ctx, rec, emit)
			}
			j.Reduce = func(ctx context.Context, key []byte, values iter.Seq[[]byte], emit mapreduce.Emit) error {
				if string(key) == "delta" {
					return errInjected
				}
				return wcSum(ctx, key, values, emit)
			}
			opts := quiet()
			opts.MaxAttempts, opts.TempDir = 3, t.TempDir()
			res, err := mapreduce.Run(context.Background(), j, opts)
			var te *mapreduce.TaskError
			if !errors.As(err, &te) || !errors.Is(err, mapreduce.ErrTaskFailed) {
				t.Fatalf("Run = %v, want a *TaskError wrapping ErrTaskFailed", err)
			}
			t.Log(err)
			if te.Phase != tc.phase || te.Attempt != 3 || te.Attempts != 3 {
				t.Errorf("TaskError %+v: want phase %v, attempt 3/3", te, tc.phase)
			}
			if tc.phase == mapreduce.PhaseMap {
				if te.Task != 1 || te.Record != 2 || string(te.Key) != "12" || !strings.Contains(te.Split, "in/b.txt") {
					t.Errorf("TaskError task %d record %d key %q split %q: want task 1, record 2, key \"12\", split of in/b.txt",
						te.Task, te.Record, te.Key, te.Split)
				}
				if res.FailedMapAttempts != 3 {
					t.Errorf("FailedMapAttempts = %d, want 3", res.FailedMapAttempts)
				}
			} else if string(te.Key) != "delta" || !strings.Contains(err.Error(), `key "delta"`) {
				t.Errorf("TaskError key %q, message %q: want key delta", te.Key, err)
			}
			if tc.panics {
				if !errors.Is(err, mapreduce.ErrPanic) || !strings.Contains(te.Stack, "panic") {
					t.Errorf("panic error %v lacks ErrPanic or stack", err)
				}
			} else if !errors.Is(err, errInjected) {
				t.Errorf("error %v does not wrap the map function's error", err)
			}
			// Nothing of a failed job is committed as complete.
			if _, err := fs.Stat(context.Background(), dfs.Join(out, mapreduce.SuccessFile)); !errors.Is(err, dfs.ErrNotFound) {
				t.Errorf("success marker after a failed job: %v", err)
			}
			ents, _ := fs.List(context.Background(), dfs.Join(out, "_temporary"))
			if len(ents) != 0 {
				t.Errorf("temporary files left: %v", ents)
			}
		})
	}
}

func TestCancellationStopsAllTasks(t *testing.T) {
	fs := memfs.New()
	for i := range 20 {
		writeFile(t, fs, fmt.Sprintf("in/%02d", i), []byte("a b c\nd e f\n"))
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var started atomic.Int64
	j := wordCount(fs, "in", "out", 2, false)
	j.Map = func(ctx context.Context, rec mapreduce.Record, emit mapreduce.Emit) error {
		if started.Add(1) == 3 {
			cancel()
		}
		<-ctx.Done() // a map function that only stops when told to
		return ctx.Err()
	}
	opts := quiet()
	opts.Workers, opts.TempDir = 4, t.TempDir()
	res, err := mapreduce.Run(ctx, j, opts)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Run = %v, want context.Canceled", err)
	}
	if n := started.Load(); n > 4 {
		t.Errorf("%d map calls started after cancellation with 4 workers", n)
	}
	if res.FailedMapAttempts > 4 {
		t.Errorf("cancelled attempts were retried: %+v", res.Counters)
	}
}

func TestInvalidJobs(t *testing.T) {
	fs := memfs.New()
	good := wordCount(fs, "in", "out", 1, false)
	for _, tc := range []struct {
		name string
		edit func(j *mapreduce.Job)
	}{
		{"no input", func(j *mapreduce.Job) { j.Input = nil }},
		{"nil map", func(j *mapreduce.Job) { j.Map = nil }},
		{"nil reduce", func(j *mapreduce.Job) { j.Reduce = nil }},
		{"no output", func(j *mapreduce.Job) { j.Output = nil }},
		{"zero reducers", func(j *mapreduce.Job) { j.NumReducers = 0 }},
		{"negative reducers", func(j *mapreduce.Job) { j.NumReducers = -2 }},
		{"input without paths", func(j *mapreduce.Job) { j.Input = mapreduce.FileInput{FS: fs} }},
		{"output without dir", func(j *mapreduce.Job) { j.Output = mapreduce.FileOutput{FS: fs} }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			j := good
			tc.edit(&j)
			_, err := mapreduce.Run(context.Background(), j, quiet())
			if !errors.Is(err, mapreduce.ErrInvalidJob) {
				t.Fatalf("Run = %v, want ErrInvalidJob", err)
			}
		})
	}
	for _, o := range []mapreduce.RunOptions{{Workers: -1}, {MemoryBudget: -1}, {MaxAttempts: -1}, {MergeFactor: 1}} {
		if _, err := mapreduce.Run(context.Background(), good, &o); !errors.Is(err, mapreduce.ErrInvalidOptions) {
			t.Errorf("Run with %+v = %v, want ErrInvalidOptions", o, err)
		}
	}
	if _, err := mapreduce.Run(context.Background(), wordCount(fs, "missing", "out", 1, false), quiet()); !errors.Is(err, dfs.ErrNotFound) {
		t.Errorf("missing input: %v, want dfs.ErrNotFound", err)
	}
}

func TestBadUserFunctions(t *testing.T) {
	fs := memfs.New()
	writeFile(t, fs, "in/a", []byte("x y z\n"))
	for _, tc := range []struct {
		name string
		edit func(j *mapreduce.Job)
		want error
	}{
		{"combiner changes key", func(j *mapreduce.Job) {
			j.Combine = func(ctx context.Context, key []byte, values iter.Seq[[]byte], emit mapreduce.Emit) error {
				return emit(append(key, '!'), []byte("1"))
			}
		}, mapreduce.ErrBadCombine},
		{"partition out of range", func(j *mapreduce.Job) { j.Partition = func(key []byte, n int) int { return n } }, mapreduce.ErrBadPartition},
		{"key with tab in text output", func(j *mapreduce.Job) {
			j.Reduce = func(ctx context.Context, key []byte, values iter.Seq[[]byte], emit mapreduce.Emit) error {
				return emit([]byte("a\tb"), nil)
			}
		}, mapreduce.ErrNotText},
	} {
		t.Run(tc.name, func(t *testing.T) {
			j := wordCount(fs, "in", "out-"+strings.ReplaceAll(tc.name, " ", "-"), 2, false)
			tc.edit(&j)
			opts := quiet()
			opts.MaxAttempts, opts.TempDir = 2, t.TempDir()
			_, err := mapreduce.Run(context.Background(), j, opts)
			if !errors.Is(err, tc.want) || !errors.Is(err, mapreduce.ErrTaskFailed) {
				t.Fatalf("Run = %v, want %v", err, tc.want)
			}
		})
	}
}

func TestOutputDirMustBeEmpty(t *testing.T) {
	fs := memfs.New()
	writeFile(t, fs, "in/a", []byte("x\n"))
	writeFile(t, fs, "out/old", []byte("y\n"))
	_, err := mapreduce.Run(context.Background(), wordCount(fs, "in", "out", 1, false), quiet())
	if !errors.Is(err, mapreduce.ErrOutputExists) {
		t.Fatalf("Run = %v, want ErrOutputExists", err)
	}
}

func TestProgressReported(t *testing.T) {
	rng := testRand(t)
	fs := memfs.New()
	c := genCorpus(t, rng, fs, "in", 3, 100, 50)
	var calls []mapreduce.Progress // Progress calls are never concurrent
	opts := quiet()
	opts.TempDir = t.TempDir()
	opts.Progress = func(p mapreduce.Progress) { calls = append(calls, p) }
	res, err := mapreduce.Run(context.Background(), wordCount(fs, "in", "out", 2, false), opts)
	if err != nil {
		t.Fatal(err)
	}
	last := calls[len(calls)-1]
	if !last.Done || last.SplitsDone != res.Splits || last.Splits != res.Splits || last.PartitionsDone != 2 ||
		last.RecordsRead != c.lines || last.BytesShuffled != res.ShuffleBytes || last.Phase != mapreduce.PhaseReduce {
		t.Errorf("last progress %+v; result %+v", last, res)
	}
	for i := 1; i < len(calls); i++ {
		if calls[i].SplitsDone < calls[i-1].SplitsDone || calls[i].RecordsRead < calls[i-1].RecordsRead {
			t.Errorf("progress went back: %+v then %+v", calls[i-1], calls[i])
		}
	}
}

// TestRecordFilesRoundTrip writes random binary records with one job in the
// record format and reads them back with another: every byte survives.
func TestRecordFilesRoundTrip(t *testing.T) {
	rng := testRand(t)
	fs := memfs.New()
	want := map[string]string{}
	var lines bytes.Buffer
	for i := range 500 {
		k := make([]byte, rng.IntN(40))
		for j := range k {
			k[j] = byte(rng.Uint32())
		}
		k = append(k, byte(i), byte(i>>8)) // distinct
		v := make([]byte, rng.IntN(300))
		for j := range v {
			v[j] = byte(rng.Uint32())
		}
		want[string(k)] = string(v)
		fmt.Fprintf(&lines, "%x %x\n", k, v)
	}
	writeFile(t, fs, "in/hex.txt", lines.Bytes())
	unhex := func(s []byte) []byte {
		b := make([]byte, len(s)/2)
		fmt.Sscanf(string(s), "%x", &b)
		return b
	}
	identity := func(ctx context.Context, key []byte, values iter.Seq[[]byte], emit mapreduce.Emit) error {
		for v := range values {
			if err := emit(key, v); err != nil {
				return err
			}
		}
		return nil
	}
	toRecords := mapreduce.Job{
		Input: mapreduce.FileInput{FS: fs, Paths: []string{"in"}},
		Map: func(ctx context.Context, rec mapreduce.Record, emit mapreduce.Emit) error {
			k, v, _ := bytes.Cut(rec.Value, []byte(" "))
			return emit(unhex(k), unhex(v))
		},
		Reduce:      identity,
		NumReducers: 3,
		Output:      mapreduce.FileOutput{FS: fs, Dir: "rec", Format: mapreduce.FormatRecords},
	}
	opts := quiet()
	opts.TempDir = t.TempDir()
	if _, err := mapreduce.Run(context.Background(), toRecords, opts); err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	var mu sync.Mutex
	back := mapreduce.Job{
		Input: mapreduce.FileInput{FS: fs, Paths: []string{"rec"}, Format: mapreduce.FormatRecords},
		Map: func(ctx context.Context, rec mapreduce.Record, emit mapreduce.Emit) error {
			mu.Lock()
			defer mu.Unlock()
			if _, dup := got[string(rec.Key)]; dup {
				return fmt.Errorf("key %x read twice", rec.Key)
			}
			got[string(rec.Key)] = string(rec.Value)
			return emit(rec.Key, rec.Value)
		},
		Reduce:      identity,
		NumReducers: 1,
		Output:      mapreduce.FileOutput{FS: fs, Dir: "rec2", Format: mapreduce.FormatRecords},
	}
	res, err := mapreduce.Run(context.Background(), back, opts)
	if err != nil {
		t.Fatal(err)
	}
	if res.Splits != 3 || len(got) != len(want) {
		t.Fatalf("%d splits, %d records; want 3 splits, %d records", res.Splits, len(got), len(want))
	}
	for k, v := range want {
		if got[k] != v {
			t.Fatalf("record %x = %x, want %x", k, got[k], v)
		}
	}
}

func TestCorruptRecordFileNotRetried(t *testing.T) {
	fs := memfs.New()
	// A valid header and one record whose last CRC byte is wrong.
	data := []byte("CMRF\x01\x00\x00\x00\x01\x01kv\x00\x00\x00\x00")
	writeFile(t, fs, "in/bad.rec", data)
	j := wordCount(fs, "in", "out", 1, false)
	j.Input = mapreduce.FileInput{FS: fs, Paths: []string{"in"}, Format: mapreduce.FormatRecords}
	opts := quiet()
	opts.TempDir = t.TempDir()
	res, err := mapreduce.Run(context.Background(), j, opts)
	var te *mapreduce.TaskError
	if !errors.Is(err, mapreduce.ErrCorrupt) || !errors.As(err, &te) || te.Record != 0 {
		t.Fatalf("Run = %v, want a TaskError at record 0 wrapping ErrCorrupt", err)
	}
	if res.FailedMapAttempts != 1 {
		t.Errorf("corrupt input was retried: %d failed attempts", res.FailedMapAttempts)
	}
}

func TestCancellationDuringReduce(t *testing.T) {
	fs := memfs.New()
	writeFile(t, fs, "in/a", []byte("a b c d e f g h\n"))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var calls atomic.Int64
	j := wordCount(fs, "in", "out", 4, false)
	j.Reduce = func(ctx context.Context, key []byte, values iter.Seq[[]byte], emit mapreduce.Emit) error {
		calls.Add(1)
		cancel()
		<-ctx.Done()
		return ctx.Err()
	}
	opts := quiet()
	opts.Workers, opts.TempDir = 2, t.TempDir()
	res, err := mapreduce.Run(ctx, j, opts)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Run = %v, want context.Canceled", err)
	}
	if n := calls.Load(); n > 2 || res.FailedReduceAttempts > 0 {
		t.Errorf("%d reduce calls, %d failed attempts after cancellation with 2 workers", n, res.FailedReduceAttempts)
	}
	if ents, _ := fs.List(context.Background(), "out"); len(ents) != 0 && !(len(ents) == 1 && ents[0].Name == "_temporary") {
		t.Errorf("cancelled job left output %v", ents)
	}
	if ents, _ := fs.List(context.Background(), "out/_temporary"); len(ents) != 0 {
		t.Errorf("cancelled job left temporary files %v", ents)
	}
}
