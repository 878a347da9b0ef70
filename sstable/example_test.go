package sstable_test

import (
	"context"
	"fmt"
	"log"

	"cellar/dfs/memfs"
	"cellar/internal/keys"
	"cellar/sstable"
)

// Example writes a small table to an in-memory file system, opens it with a
// shared block cache, checks the Bloom filter and seeks to a row.
func Example() {
	ctx := context.Background()
	fs := memfs.New()
	f, err := fs.Create(ctx, "tablets/1/000001.sst")
	if err != nil {
		log.Fatal(err)
	}
	w := sstable.NewWriter(f, nil) // defaults: 64 KiB blocks, Snappy, 1% Bloom filter
	for i, row := range []string{"apple", "banana", "cherry"} {
		k := keys.Encode(keys.Key{Row: []byte(row), Family: "cf", Qualifier: []byte("color"),
			Timestamp: 100, Seq: keys.SeqNum(i + 1), Kind: keys.KindSet})
		if err := w.Add(k, []byte("value of "+row)); err != nil {
			log.Fatal(err)
		}
	}
	if err := w.Close(); err != nil { // syncs and closes f
		log.Fatal(err)
	}

	rf, err := fs.Open(ctx, "tablets/1/000001.sst")
	if err != nil {
		log.Fatal(err)
	}
	cache := sstable.NewCache(8 << 20)
	r, err := sstable.Open(rf, "tablets/1/000001.sst", &sstable.ReaderOptions{Cache: cache})
	if err != nil {
		log.Fatal(err)
	}
	defer r.Close()
	fmt.Println("entries:", r.Properties().NumEntries)
	fmt.Println("may contain banana:", r.MayContain(keys.AppendRowPrefix(nil, []byte("banana"))))

	it := r.NewIter()
	defer it.Close()
	for ok := it.SeekGE(keys.AppendRowPrefix(nil, []byte("b"))); ok; ok = it.Next() {
		k, err := keys.Decode(it.Key())
		if err != nil {
			log.Fatal(err)
		}
		fmt.Printf("%s: %s\n", k.Row, it.Value())
	}
	if err := it.Error(); err != nil {
		log.Fatal(err)
	}
	// Output:
	// entries: 3
	// may contain banana: true
	// banana: value of banana
	// cherry: value of cherry
}
