package memtable_test

import (
	"errors"
	"fmt"

	"cellar/internal/keys"
	"cellar/memtable"
)

func Example() {
	m := memtable.New(&memtable.Options{ArenaSize: 1 << 20})
	for i, c := range []struct {
		row string
		ts  int64
		val string
	}{{"r2", 10, "b"}, {"r1", 10, "old"}, {"r1", 20, "new"}} {
		k := keys.Encode(keys.Key{Row: []byte(c.row), Family: "cf", Qualifier: []byte("q"),
			Timestamp: c.ts, Seq: keys.SeqNum(i + 1), Kind: keys.KindSet})
		if err := m.Add(k, []byte(c.val)); errors.Is(err, memtable.ErrArenaFull) {
			// The tablet would make m immutable and add to a new memtable.
			fmt.Println("full")
		} else if err != nil {
			fmt.Println(err)
		}
	}
	it := m.NewIter()
	defer it.Close()
	for ok := it.First(); ok; ok = it.Next() {
		k, err := keys.Decode(it.Key())
		if err != nil {
			fmt.Println(err)
			return
		}
		fmt.Printf("%s/%s:%s@%d = %s\n", k.Row, k.Family, k.Qualifier, k.Timestamp, it.Value())
	}
	fmt.Println(m.Len(), "entries")
	// Output:
	// r1/cf:q@20 = new
	// r1/cf:q@10 = old
	// r2/cf:q@10 = b
	// 3 entries
}
