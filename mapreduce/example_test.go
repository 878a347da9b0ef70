package mapreduce_test

import (
	"bytes"
	"context"
	"fmt"
	"iter"
	"log"
	"strconv"

	"cellar/dfs/memfs"
	"cellar/mapreduce"
)

// Example counts words in a text file and prints the output partition.
func Example() {
	ctx := context.Background()
	fs := memfs.New()
	f, err := fs.Create(ctx, "books/a.txt")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Fprintln(f, "the quick brown fox")
	fmt.Fprintln(f, "jumps over the lazy dog")
	if err := f.Close(); err != nil {
		log.Fatal(err)
	}

	sum := func(ctx context.Context, key []byte, values iter.Seq[[]byte], emit mapreduce.Emit) error {
		n := 0
		for v := range values {
			x, err := strconv.Atoi(string(v))
			if err != nil {
				return err
			}
			n += x
		}
		return emit(key, []byte(strconv.Itoa(n)))
	}
	res, err := mapreduce.Run(ctx, mapreduce.Job{
		Input: mapreduce.FileInput{FS: fs, Paths: []string{"books"}},
		Map: func(ctx context.Context, rec mapreduce.Record, emit mapreduce.Emit) error {
			for w := range bytes.FieldsSeq(rec.Value) {
				if err := emit(w, []byte("1")); err != nil {
					return err
				}
			}
			return nil
		},
		Combine:     sum,
		Reduce:      sum,
		NumReducers: 1,
		Output:      mapreduce.FileOutput{FS: fs, Dir: "counts"},
	}, &mapreduce.RunOptions{Workers: 2, Logger: discardLogger})
	if err != nil {
		log.Fatal(err)
	}
	out, err := fs.Open(ctx, "counts/part-00000")
	if err != nil {
		log.Fatal(err)
	}
	defer out.Close()
	buf := make([]byte, out.Size())
	if _, err := out.ReadAt(buf, 0); err != nil {
		log.Fatal(err)
	}
	fmt.Print(string(buf))
	fmt.Println("records in:", res.MapInputRecords, "out:", res.OutputRecords)
	// Output:
	// brown	1
	// dog	1
	// fox	1
	// jumps	1
	// lazy	1
	// over	1
	// quick	1
	// the	2
	// records in: 2 out: 8
}
