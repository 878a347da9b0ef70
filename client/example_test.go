package client_test

import (
	"context"
	"fmt"
	"log"
	"time"

	"cellar/client"
)

// This example needs a running cluster (e.g. `cellar standalone`); it is
// compiled, not run.
func Example() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := client.Dial(ctx, []string{"127.0.0.1:7000"})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	if err := c.Admin().CreateTable(ctx, "webtable", map[string]client.GCPolicy{
		"contents": client.MaxVersionsPolicy(3),
		"anchor":   client.MaxAgePolicy(30 * 24 * time.Hour),
	}); err != nil {
		log.Fatal(err)
	}

	tbl := c.Open("webtable")
	m := client.NewMutation()
	m.Set("contents", "html", client.Now(), []byte("<html>…</html>"))
	m.Set("anchor", "cnnsi.com", client.Now(), []byte("CNN"))
	if err := tbl.Apply(ctx, "com.cnn.www", m, client.WithDurability(client.Sync)); err != nil {
		log.Fatal(err)
	}

	row, err := tbl.ReadRow(ctx, "com.cnn.www", client.RowFilter(client.LatestNFilter(1)))
	if err != nil {
		log.Fatal(err)
	}
	for _, item := range row["anchor"] {
		fmt.Printf("%s = %s @ %v\n", item.Column, item.Value, item.Timestamp.Time())
	}

	err = tbl.ReadRows(ctx, client.PrefixRange("com.cnn."), func(r client.Row) bool {
		fmt.Println(r.Key())
		return true
	}, client.LimitRows(100))
	if err != nil {
		log.Fatal(err)
	}
}
