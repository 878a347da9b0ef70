package wal_test

import (
	"context"
	"fmt"
	"log/slog"

	"cellar/dfs/memfs"
	"cellar/internal/keys"
	"cellar/wal"
)

// Example appends entries for two tablets, closes the log, and replays it
// as recovery after a restart would.
func Example() {
	ctx := context.Background()
	fs := memfs.New() // dfs/local or the replicated dfs in production
	quiet := slog.New(slog.DiscardHandler)

	l, err := wal.Open(ctx, fs, &wal.Options{Dir: "log", Logger: quiet})
	if err != nil {
		fmt.Println(err)
		return
	}
	// sync=true: Append returns once the entry is durable.
	for i, row := range []string{"apple", "banana", "cherry"} {
		e := wal.Entry{Tablet: uint64(i%2 + 1), Seq: keys.SeqNum(i + 1), Data: []byte(row)}
		if err := l.Append(ctx, e, true); err != nil {
			fmt.Println(err)
			return
		}
	}
	for _, f := range l.Files() {
		fmt.Printf("%s: max seq of tablet 1 = %d, of tablet 2 = %d\n", f.Name, f.MaxSeq[1], f.MaxSeq[2])
	}
	if err := l.Close(); err != nil {
		fmt.Println(err)
		return
	}

	st, err := wal.Replay(ctx, fs, "log", &wal.ReplayOptions{Logger: quiet}, func(e wal.Entry) error {
		fmt.Printf("tablet %d %v %s\n", e.Tablet, e.Seq, e.Data)
		return nil
	})
	fmt.Printf("%d entries from %d file(s), torn tail: %v, err: %v\n", st.Entries, st.Files, st.TornTail, err)
	// Output:
	// log/0000000000000001.log: max seq of tablet 1 = 3, of tablet 2 = 2
	// tablet 1 seq:1 apple
	// tablet 2 seq:2 banana
	// tablet 1 seq:3 cherry
	// 3 entries from 1 file(s), torn tail: false, err: <nil>
}
