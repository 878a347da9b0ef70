package tablet_test

import (
	"context"
	"fmt"
	"time"

	"cellar/dfs/memfs"
	"cellar/internal/keys"
	"cellar/tablet"
)

func Example() {
	ctx := context.Background()
	t, err := tablet.Open(ctx, &tablet.Options{
		FS:  memfs.New(),
		Dir: "tables/users/tablet-1",
		Families: []tablet.FamilyOptions{
			{Name: "profile", GC: tablet.MaxVersions(1)},
			{Name: "visits", GC: tablet.Union(tablet.MaxVersions(3), tablet.MaxAge(30*24*time.Hour))},
		},
		MemtableSize: 1 << 20,
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer t.Close()

	now := time.Now().UnixMicro() // timestamps are µs; MaxAge compares with the clock
	// One Apply is one atomic row mutation.
	err = t.Apply(ctx, []byte("user#42"), []tablet.Mutation{
		tablet.SetCell("profile", []byte("name"), 1, []byte("Ada")),
		tablet.SetCell("profile", []byte("name"), 2, []byte("Ada L.")),
		tablet.SetCell("visits", []byte("home"), now-1, []byte("1")),
		tablet.SetCell("visits", []byte("home"), now, []byte("2")),
	}, nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	// Deletes are tombstones: this one masks versions in [0, now).
	t.Apply(ctx, []byte("user#42"), []tablet.Mutation{
		tablet.DeleteColumn("visits", []byte("home"), keys.TimeRange{Start: 0, End: now}),
	}, nil)
	t.Flush(ctx) // minor compaction: memtable -> one SSTable per family

	row, _ := t.ReadRow(ctx, []byte("user#42"), nil)
	for _, c := range row.Cells {
		fmt.Printf("%s:%s = %s\n", c.Family, c.Qualifier, c.Value)
	}
	missing, _ := t.ReadRow(ctx, []byte("user#7"), nil)
	fmt.Println("user#7:", missing)
	// Output:
	// profile:name = Ada L.
	// visits:home = 2
	// user#7: <nil>
}
