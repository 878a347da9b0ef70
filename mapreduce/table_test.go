package mapreduce_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"iter"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"cellar/client"
	"cellar/dfs/memfs"
	"cellar/internal/testcluster"
	"cellar/mapreduce"
)

// tableEnv is a mini-cluster with a client, shared by the subtests of one
// test (each uses its own tables).
type tableEnv struct {
	c  *testcluster.Cluster
	cl *client.Client
}

func startTableEnv(t *testing.T) *tableEnv {
	t.Helper()
	c := testcluster.Start(t, testcluster.Options{MemFS: true})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cl, err := client.Dial(ctx, c.LockAddrs())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cl.Close() })
	return &tableEnv{c: c, cl: cl}
}

func (e *tableEnv) createTable(t *testing.T, name string, families []string, splits ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	fams := map[string]client.GCPolicy{}
	for _, f := range families {
		fams[f] = client.NoGcPolicy()
	}
	if err := e.cl.Admin().CreateTable(ctx, name, fams, splits...); err != nil {
		t.Fatalf("create table %s: %v", name, err)
	}
	if err := e.c.WaitAllAssigned(ctx); err != nil {
		t.Fatal(err)
	}
}

const testRows = 2000

// testSplits pre-split the test table into 5 tablets.
var testSplits = []string{"r0400", "r0800", "r1200", "r1600"}

func rowKey(i int) string { return fmt.Sprintf("r%04d", i) }

// fillTable writes testRows rows: every row has f:a (a random binary
// value of valueSize to valueSize+49 bytes), every third row g:x in two
// versions.
func fillTable(t *testing.T, tbl *client.Table, seed uint64, valueSize int) {
	t.Helper()
	r := rand.New(rand.NewPCG(seed, 1))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var rows []string
	var muts []*client.Mutation
	for i := range testRows {
		m := client.NewMutation()
		v := make([]byte, valueSize+r.IntN(50))
		for j := range v {
			v[j] = byte(r.Uint32())
		}
		m.Set("f", "a", client.Timestamp(1000+i), v)
		if i%3 == 0 {
			m.Set("g", "x", 10, []byte("old"))
			m.Set("g", "x", 20, []byte(fmt.Sprintf("w%d w%d common", i%7, i%11)))
		}
		rows, muts = append(rows, rowKey(i)), append(muts, m)
		if len(rows) == 200 || i == testRows-1 { // under gRPC's 4 MiB message limit
			errs, err := tbl.ApplyBulk(ctx, rows, muts)
			if err != nil || errs != nil {
				t.Fatalf("fill: %v %v", err, errors.Join(errs...))
			}
			rows, muts = rows[:0], muts[:0]
		}
	}
}

// dump lists every cell version of a table, one line each, in order.
func dump(t *testing.T, tbl *client.Table) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var out []string
	err := tbl.ReadRows(ctx, client.InfiniteRange(""), func(r client.Row) bool {
		for _, c := range mapreduce.RowCells(r) {
			out = append(out, fmt.Sprintf("%q %q:%q @%d = %q", r.Key(), c.Family, c.Qualifier, c.Timestamp, c.Value))
		}
		return true
	})
	if err != nil {
		t.Fatalf("dump %s: %v", tbl.Name(), err)
	}
	return out
}

func runJob(t *testing.T, job mapreduce.Job, opts *mapreduce.RunOptions) mapreduce.Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	if opts == nil {
		opts = &mapreduce.RunOptions{}
	}
	if opts.TempDir == "" {
		opts.TempDir = t.TempDir()
	}
	if opts.Logger == nil {
		opts.Logger = discardLogger
	}
	res, err := mapreduce.Run(ctx, job, opts)
	if err != nil {
		t.Fatalf("run %s: %v", job.Name, err)
	}
	return res
}

func rowCount(t *testing.T, in mapreduce.TableInput, opts *mapreduce.RunOptions) mapreduce.RowCounts {
	t.Helper()
	job, counts := mapreduce.RowCountJob(in, true)
	runJob(t, job, opts)
	c, err := counts()
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func wantCounts(start, end int) mapreduce.RowCounts {
	w := mapreduce.RowCounts{Cells: map[string]int64{}}
	for i := start; i < end; i++ {
		w.Rows++
		w.Cells["f"]++
		if i%3 == 0 {
			w.Cells["g"] += 2
		}
	}
	return w
}

func checkRowCounts(t *testing.T, got, want mapreduce.RowCounts) {
	t.Helper()
	if got.Rows != want.Rows || fmt.Sprint(got.Cells) != fmt.Sprint(want.Cells) {
		t.Fatalf("row count = %d rows %v cells, want %d rows %v cells", got.Rows, got.Cells, want.Rows, want.Cells)
	}
}

// TestTableInput_SplitsPerTablet: one split per tablet of the range, each
// with its server's address.
func TestTableInput_SplitsPerTablet(t *testing.T) {
	e := startTableEnv(t)
	e.createTable(t, "src", []string{"f", "g"}, testSplits...)
	fillTable(t, e.cl.Open("src"), 1, 20)
	ctx := context.Background()
	splits, err := mapreduce.TableInput{Client: e.cl, Table: "src"}.Splits(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(splits) != 5 {
		t.Fatalf("%d splits, want 5 (one per tablet)", len(splits))
	}
	for _, s := range splits {
		if s.Location() == "" {
			t.Errorf("split %s has no location", s.Description())
		}
	}
	splits, err = mapreduce.TableInput{Client: e.cl, Table: "src", Start: "r0500", End: "r0900"}.Splits(ctx)
	if err != nil || len(splits) != 2 {
		t.Fatalf("range [r0500, r0900): %d splits, %v; want 2", len(splits), err)
	}

	t.Run("RowCountExact", func(t *testing.T) {
		checkRowCounts(t, rowCount(t, mapreduce.TableInput{Client: e.cl, Table: "src"}, nil), wantCounts(0, testRows))
		checkRowCounts(t, rowCount(t, mapreduce.TableInput{Client: e.cl, Table: "src", Start: rowKey(123), End: rowKey(1777)}, nil), wantCounts(123, 1777))
		got := rowCount(t, mapreduce.TableInput{Client: e.cl, Table: "src", Families: []string{"g"}, MaxVersions: 1}, nil)
		if got.Rows != (testRows+2)/3 || got.Cells["g"] != got.Rows || got.Cells["f"] != 0 {
			t.Fatalf("family g, latest version: %+v", got)
		}
	})

	t.Run("CopyTableExact", func(t *testing.T) {
		e.createTable(t, "dst", []string{"f", "g"}, "r1000")
		runJob(t, mapreduce.CopyTableJob(mapreduce.TableInput{Client: e.cl, Table: "src"}, &mapreduce.TableOutput{Client: e.cl, Table: "dst", BatchRows: 97}), nil)
		want, got := dump(t, e.cl.Open("src")), dump(t, e.cl.Open("dst"))
		if !slices.Equal(got, want) {
			t.Fatalf("copy differs: %d cells, want %d", len(got), len(want))
		}
		// A range into a fresh table.
		e.createTable(t, "dst2", []string{"f", "g"})
		runJob(t, mapreduce.CopyTableJob(mapreduce.TableInput{Client: e.cl, Table: "src", Start: rowKey(10), End: rowKey(20)}, &mapreduce.TableOutput{Client: e.cl, Table: "dst2"}), nil)
		checkRowCounts(t, rowCount(t, mapreduce.TableInput{Client: e.cl, Table: "dst2"}, nil), wantCounts(10, 20))
	})

	t.Run("SameOutputWith1And8Workers", func(t *testing.T) {
		fs := memfs.New()
		var parts [2][]string
		for i, w := range []int{1, 8} {
			dir := fmt.Sprintf("export-w%d", w)
			runJob(t, mapreduce.ExportJob(mapreduce.TableInput{Client: e.cl, Table: "src"}, mapreduce.FileOutput{FS: fs, Dir: dir}), &mapreduce.RunOptions{Workers: w})
			for p := range 4 {
				parts[i] = append(parts[i], string(readAll(t, fs, mapreduce.FileOutput{Dir: dir}.PartName(p))))
			}
		}
		if !slices.Equal(parts[0], parts[1]) {
			t.Fatal("export with 1 worker and with 8 workers differ")
		}
	})

	t.Run("TinyBudgetSpills", func(t *testing.T) {
		want := map[string]int{}
		for i := 0; i < testRows; i += 3 {
			for _, w := range strings.Fields(fmt.Sprintf("w%d w%d common", i%7, i%11)) {
				want[w]++
			}
		}
		for _, combine := range []bool{false, true} {
			out := &mapreduce.MemOutput{}
			job := wordCountJob(mapreduce.TableInput{Client: e.cl, Table: "src", Families: []string{"g"}, MaxVersions: 1}, out, combine)
			res := runJob(t, job, &mapreduce.RunOptions{Workers: 3, MemoryBudget: 512})
			if res.Spills == 0 {
				t.Fatalf("combine=%v: no spill with a 512-byte budget", combine)
			}
			got := map[string]int{}
			for _, r := range out.Records() {
				got[string(r.Key)] = int(decodeCount(t, r.Value))
			}
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Fatalf("combine=%v: word count = %v, want %v", combine, got, want)
			}
		}
	})

	t.Run("ExportImportRoundTripBinary", func(t *testing.T) {
		seed := uint64(time.Now().UnixNano())
		t.Logf("seed %d", seed)
		r := rand.New(rand.NewPCG(seed, 2))
		e.createTable(t, "bin", []string{"f", "g"}, "\x40", "\x80\x00")
		tbl := e.cl.Open("bin")
		ctx := context.Background()
		randBytes := func(min, n int) []byte {
			b := make([]byte, min+r.IntN(n))
			for i := range b {
				b[i] = byte(r.Uint32())
			}
			return b
		}
		for range 300 {
			m := client.NewMutation()
			for range 1 + r.IntN(4) {
				fam := []string{"f", "g"}[r.IntN(2)]
				m.Set(fam, string(randBytes(0, 12)), client.Timestamp(r.Int64N(1<<50)), randBytes(0, 300))
			}
			if err := tbl.Apply(ctx, string(randBytes(1, 20)), m); err != nil {
				t.Fatalf("seed %d: %v", seed, err)
			}
		}
		fs := memfs.New()
		runJob(t, mapreduce.ExportJob(mapreduce.TableInput{Client: e.cl, Table: "bin"}, mapreduce.FileOutput{FS: fs, Dir: "bin-export"}), nil)
		e.createTable(t, "bin2", []string{"f", "g"}, "\x20")
		runJob(t, mapreduce.ImportJob(mapreduce.FileInput{FS: fs, Paths: []string{"bin-export"}}, &mapreduce.TableOutput{Client: e.cl, Table: "bin2"}), nil)
		want, got := dump(t, tbl), dump(t, e.cl.Open("bin2"))
		if len(want) == 0 || !slices.Equal(got, want) {
			t.Fatalf("seed %d: round trip differs: %d cells, want %d", seed, len(got), len(want))
		}
	})

	t.Run("ImportTSVBadLines", func(t *testing.T) {
		fs := memfs.New()
		lines := "k1\tAda\t36\n" +
			"k2\tBob\n" + // too few fields
			"k3\tCy\t7\n" +
			"\tNo\t1\n" + // empty row key
			"k4\tDi\t9\textra\n" + // too many fields
			"k5\t\t\n" // empty values are fine
		writeFile(t, fs, "people.tsv", []byte(lines))
		e.createTable(t, "people", []string{"p"})
		cols, err := mapreduce.ParseTSVColumns("ROW,p:name,p:age")
		if err != nil {
			t.Fatal(err)
		}
		out := &mapreduce.TableOutput{Client: e.cl, Table: "people", Timestamp: 777}
		job, report := mapreduce.ImportTSVJob(mapreduce.FileInput{FS: fs, Paths: []string{"people.tsv"}}, cols, out)
		runJob(t, job, nil)
		rep := report()
		if rep.BadLines != 3 || len(rep.First) != 3 || rep.First[0].Offset != int64(len("k1\tAda\t36\n")) {
			t.Fatalf("report = %+v, want 3 bad lines, the first at offset 10", rep)
		}
		got := dump(t, e.cl.Open("people"))
		want := []string{
			`"k1" "p":"age" @777 = "36"`, `"k1" "p":"name" @777 = "Ada"`,
			`"k3" "p":"age" @777 = "7"`, `"k3" "p":"name" @777 = "Cy"`,
			`"k5" "p":"age" @777 = ""`, `"k5" "p":"name" @777 = ""`,
		}
		if !slices.Equal(got, want) {
			t.Fatalf("people = %q, want %q", got, want)
		}
		if _, err := mapreduce.ParseTSVColumns("p:name,p:age"); !errors.Is(err, mapreduce.ErrInvalidJob) {
			t.Fatalf("spec without ROW: %v", err)
		}
	})

	t.Run("BadInputAndFaults", func(t *testing.T) { testBadInput(t, e) })

	t.Run("RetriedReduceWritesNothingTwice", func(t *testing.T) {
		e.createTable(t, "retry", []string{"f", "g"})
		var failed atomic.Bool
		// Word count into a table, with cells at the job's timestamp: the
		// first reduce attempt writes part of its output, then fails.
		job := wordCountJob(mapreduce.TableInput{Client: e.cl, Table: "src", Families: []string{"g"}, MaxVersions: 1}, nil, true)
		job.Output = &mapreduce.TableOutput{Client: e.cl, Table: "retry", Families: []string{"f"}, BatchRows: 2}
		job.NumReducers = 1
		inner := job.Reduce
		job.Reduce = func(ctx context.Context, key []byte, values iter.Seq[[]byte], emit mapreduce.Emit) error {
			var sum []byte
			err := inner(ctx, key, values, func(k, v []byte) error { sum = bytes.Clone(v); return nil })
			if err != nil {
				return err
			}
			if ti, _ := mapreduce.TaskFromContext(ctx); ti.Attempt == 1 && string(key) == "w5" {
				failed.Store(true)
				return errors.New("injected failure after writing part of the output")
			}
			return emit(key, mapreduce.AppendCells(nil, []mapreduce.Cell{{Family: "f", Qualifier: "n", Timestamp: client.ServerTime, Value: sum}}))
		}
		res := runJob(t, job, nil)
		if !failed.Load() || res.FailedReduceAttempts != 1 {
			t.Fatalf("the injected failure did not happen: %+v", res.Counters)
		}
		got := dump(t, e.cl.Open("retry"))
		if len(got) != 12 { // "common" and w0..w10, one version each
			t.Fatalf("word count table has %d cells (want 12 words, one version each): %q", len(got), got)
		}
	})
}

// wordCountJob counts the words of the values of in's cells, into out
// (a MemOutput if out is nil) with uvarint counts.
func wordCountJob(in mapreduce.TableInput, out mapreduce.Output, combine bool) mapreduce.Job {
	if out == nil {
		out = &mapreduce.MemOutput{}
	}
	one := []byte{1}
	job := mapreduce.Job{
		Name:  "wordcount",
		Input: in,
		Map: func(ctx context.Context, rec mapreduce.Record, emit mapreduce.Emit) error {
			for _, items := range rec.Row {
				for _, it := range items {
					for w := range bytes.FieldsSeq(it.Value) {
						if err := emit(w, one); err != nil {
							return err
						}
					}
				}
			}
			return nil
		},
		Reduce:      mapreduce.SumCounts,
		NumReducers: 3,
		Output:      out,
	}
	if combine {
		job.Combine = mapreduce.SumCounts
	}
	return job
}

func decodeCount(t *testing.T, v []byte) uint64 {
	t.Helper()
	var n uint64
	var shift uint
	for i, b := range v {
		n |= uint64(b&0x7f) << shift
		shift += 7
		if b < 0x80 {
			if i != len(v)-1 {
				t.Fatalf("count %x has trailing bytes", v)
			}
			return n
		}
	}
	t.Fatalf("count %x is not a uvarint", v)
	return 0
}

func testBadInput(t *testing.T, e *tableEnv) {
	ctx := context.Background()
	run := func(job mapreduce.Job) error {
		_, err := mapreduce.Run(ctx, job, &mapreduce.RunOptions{TempDir: t.TempDir(), Logger: discardLogger, MaxAttempts: 2})
		return err
	}
	if err := run(mapreduce.ExportJob(mapreduce.TableInput{Client: e.cl, Table: "nosuch"}, mapreduce.FileOutput{FS: memfs.New(), Dir: "x"})); !errors.Is(err, client.ErrTableNotFound) {
		t.Errorf("unknown input table: %v, want ErrTableNotFound", err)
	}
	if err := run(mapreduce.ExportJob(mapreduce.TableInput{Client: e.cl, Table: "src", Families: []string{"nope"}}, mapreduce.FileOutput{FS: memfs.New(), Dir: "x"})); !errors.Is(err, client.ErrUnknownFamily) || !strings.Contains(err.Error(), "nope") {
		t.Errorf("unknown input family: %v, want ErrUnknownFamily naming it", err)
	}
	e.createTable(t, "onlyf", []string{"f"})
	if err := run(mapreduce.CopyTableJob(mapreduce.TableInput{Client: e.cl, Table: "src"}, &mapreduce.TableOutput{Client: e.cl, Table: "onlyf"})); !errors.Is(err, mapreduce.ErrMissingFamily) || !strings.Contains(err.Error(), `"g"`) && !strings.Contains(err.Error(), "g (create") {
		t.Errorf("output without family g: %v, want ErrMissingFamily naming g", err)
	}
	if n := len(dump(t, e.cl.Open("onlyf"))); n != 0 {
		t.Errorf("the refused copy wrote %d cells", n)
	}
	// Import cannot check families up front: the refused rows are reported
	// per row (a *WriteError) in the reduce task's error.
	fs := memfs.New()
	if err := run(mapreduce.ExportJob(mapreduce.TableInput{Client: e.cl, Table: "src", Start: "r0000", End: "r0010"}, mapreduce.FileOutput{FS: fs, Dir: "ten"})); err != nil {
		t.Fatal(err)
	}
	err := run(mapreduce.ImportJob(mapreduce.FileInput{FS: fs, Paths: []string{"ten"}}, &mapreduce.TableOutput{Client: e.cl, Table: "onlyf"}))
	var we *mapreduce.WriteError
	if !errors.As(err, &we) || !errors.Is(err, mapreduce.ErrWriteFailed) || !errors.Is(err, client.ErrUnknownFamily) || we.Failed == 0 || len(we.Rows) == 0 || !strings.HasPrefix(we.Rows[0].Row, "r000") {
		t.Errorf("import into a table without family g: %v, want a WriteError naming rows, wrapping ErrUnknownFamily", err)
	}
	if err := run(mapreduce.CopyTableJob(mapreduce.TableInput{Client: e.cl, Table: "src"}, &mapreduce.TableOutput{Client: e.cl, Table: "nosuch"})); !errors.Is(err, client.ErrTableNotFound) {
		t.Errorf("unknown output table: %v, want ErrTableNotFound", err)
	}

	// A map function failing on one row, or panicking: the error names the
	// task and the row, after the retries.
	for _, panics := range []bool{false, true} {
		job, _ := mapreduce.RowCountJob(mapreduce.TableInput{Client: e.cl, Table: "src"}, false)
		inner := job.Map
		job.Map = func(ctx context.Context, rec mapreduce.Record, emit mapreduce.Emit) error {
			if string(rec.Key) == "r0777" {
				if panics {
					panic("boom")
				}
				return errors.New("bad row")
			}
			return inner(ctx, rec, emit)
		}
		err := run(job)
		var te *mapreduce.TaskError
		if !errors.As(err, &te) || te.Phase != mapreduce.PhaseMap || string(te.Key) != "r0777" || te.Attempt != 2 ||
			!strings.Contains(err.Error(), `key "r0777"`) || !strings.Contains(err.Error(), "map task 1") {
			t.Errorf("panics=%v: %v, want a map TaskError for task 1 row r0777 after 2 attempts", panics, err)
		}
		if panics != errors.Is(err, mapreduce.ErrPanic) {
			t.Errorf("panics=%v: errors.Is(ErrPanic) = %v", panics, !panics)
		}
	}
	// A reduce function failing on one key.
	job := wordCountJob(mapreduce.TableInput{Client: e.cl, Table: "src", Families: []string{"g"}}, nil, false)
	job.Reduce = func(ctx context.Context, key []byte, values iter.Seq[[]byte], emit mapreduce.Emit) error {
		if string(key) == "w3" {
			return errors.New("cannot reduce")
		}
		return mapreduce.SumCounts(ctx, key, values, emit)
	}
	err = run(job)
	var te *mapreduce.TaskError
	if !errors.As(err, &te) || te.Phase != mapreduce.PhaseReduce || string(te.Key) != "w3" || !strings.Contains(err.Error(), `key "w3"`) {
		t.Errorf("reduce failure: %v, want a reduce TaskError naming key w3", err)
	}
}

// TestTableInput_SplitAndKillMidJob: a tablet split and a tablet-server
// kill while a job reads the tablet change nothing in the result.
func TestTableInput_SplitAndKillMidJob(t *testing.T) {
	e := startTableEnv(t)
	e.createTable(t, "src", []string{"f", "g"}, testSplits...)
	tbl := e.cl.Open("src")
	// Values of 4 KB make each tablet ~1.6 MB, more than a stream
	// buffers ahead while the map function is paused: the reader has to
	// fetch the tablet's later rows after the fault.
	fillTable(t, tbl, 3, 4000)
	want := dump(t, tbl)
	fs := memfs.New()
	ctx := context.Background()

	// exportPausing exports src, pausing the map function at row r0450
	// (tablet [r0400, r0800)) while fault runs.
	exportPausing := func(dir string, in mapreduce.TableInput, fault func()) []string {
		t.Helper()
		job := mapreduce.ExportJob(in, mapreduce.FileOutput{FS: fs, Dir: dir})
		inner := job.Map
		reached, resume := make(chan struct{}), make(chan struct{})
		var once sync.Once
		job.Map = func(ctx context.Context, rec mapreduce.Record, emit mapreduce.Emit) error {
			if string(rec.Key) == "r0450" {
				once.Do(func() {
					close(reached)
					<-resume
				})
			}
			return inner(ctx, rec, emit)
		}
		done := make(chan error, 1)
		go func() {
			_, err := mapreduce.Run(ctx, job, &mapreduce.RunOptions{Workers: 2, TempDir: t.TempDir(), Logger: discardLogger, MaxAttempts: 1})
			done <- err
		}()
		select {
		case <-reached:
		case err := <-done:
			t.Fatalf("job ended before reaching r0450: %v", err)
		}
		fault()
		close(resume)
		if err := <-done; err != nil {
			t.Fatalf("job: %v", err)
		}
		// Import the export into a fresh table and compare every cell.
		name := "copy-" + dir
		e.createTable(t, name, []string{"f", "g"})
		runJob(t, mapreduce.ImportJob(mapreduce.FileInput{FS: fs, Paths: []string{dir}}, &mapreduce.TableOutput{Client: e.cl, Table: name}), nil)
		return dump(t, e.cl.Open(name))
	}

	t.Run("Split", func(t *testing.T) {
		got := exportPausing("split", mapreduce.TableInput{Client: e.cl, Table: "src", BatchRows: 8}, func() {
			if err := e.cl.Admin().SplitTable(ctx, "src", "r0600"); err != nil {
				t.Fatalf("split: %v", err)
			}
			if err := e.c.WaitAllAssigned(ctx); err != nil {
				t.Fatal(err)
			}
		})
		info, err := e.cl.Admin().TableInfo(ctx, "src")
		if err != nil || len(info.Tablets) != 6 {
			t.Fatalf("after the split: %v tablets, %v; want 6", len(info.Tablets), err)
		}
		if !slices.Equal(got, want) {
			t.Fatalf("export during a split differs: %d cells, want %d", len(got), len(want))
		}
	})

	// killServing kills the server of the tablet holding r0450.
	killServing := func() {
		info, err := e.cl.Admin().TableInfo(ctx, "src")
		if err != nil {
			t.Fatal(err)
		}
		var addr string
		for _, tb := range info.Tablets {
			if tb.StartKey <= "r0450" && (tb.EndKey == "" || "r0450" < tb.EndKey) {
				addr = tb.ServerAddr
			}
		}
		for i, s := range e.c.Servers {
			if s.Addr == addr {
				e.c.KillServer(i)
				return
			}
		}
		t.Fatalf("no server at %q", addr)
	}

	t.Run("KillServer", func(t *testing.T) {
		got := exportPausing("kill", mapreduce.TableInput{Client: e.cl, Table: "src", BatchRows: 8}, killServing)
		if !slices.Equal(got, want) {
			t.Fatalf("export during a server kill differs: %d cells, want %d", len(got), len(want))
		}
	})

	// With a 300ms client call deadline, scans give up while the killed
	// server's tablets are reassigned (and long scans end at the
	// deadline): the reader resumes after the last row it returned.
	t.Run("KillServerReaderResumes", func(t *testing.T) {
		short, err := client.Dial(ctx, e.c.LockAddrs(), client.WithDefaultCallTimeout(300*time.Millisecond))
		if err != nil {
			t.Fatal(err)
		}
		defer short.Close()
		got := exportPausing("kill-resume", mapreduce.TableInput{Client: short, Table: "src", BatchRows: 8, ResumeAttempts: 100}, killServing)
		if !slices.Equal(got, want) {
			t.Fatalf("export with resumed scans differs: %d cells, want %d", len(got), len(want))
		}
	})
}
