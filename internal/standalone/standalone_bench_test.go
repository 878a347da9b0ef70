package standalone_test

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"cellar/client"
	"cellar/internal/standalone"
)

// BenchmarkRestart measures how long a restart takes until every tablet is
// served again (Start + Ready), after a clean Close and after Kill (no
// flush: the commit log is split and replayed), with 8 tablets holding
// 2,000 rows.
func BenchmarkRestart(b *testing.B) {
	for _, clean := range []bool{true, false} {
		name := map[bool]string{true: "after=close", false: "after=kill"}[clean]
		b.Run(name, func(b *testing.B) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
			defer cancel()
			dir := b.TempDir()
			opts := standalone.Options{Dir: dir, Listen: "127.0.0.1:0", Logger: slog.New(slog.DiscardHandler)}
			start := func() *standalone.Node {
				n, err := standalone.Start(ctx, opts)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := n.Ready(ctx); err != nil {
					b.Fatal(err)
				}
				return n
			}
			n := start()
			c, err := client.Dial(ctx, []string{n.Addr()}, client.WithLogger(slog.New(slog.DiscardHandler)))
			if err != nil {
				b.Fatal(err)
			}
			if err := c.Admin().CreateTable(ctx, "t", map[string]client.GCPolicy{"f": client.MaxVersionsPolicy(1)},
				"2", "4", "6", "8", "a", "c", "e"); err != nil {
				b.Fatal(err)
			}
			for i := range 2000 {
				m := client.NewMutation()
				m.Set("f", "q", 1, []byte("v"))
				if err := c.Open("t").Apply(ctx, fmt.Sprintf("%x", i*7919), m); err != nil {
					b.Fatal(err)
				}
			}
			c.Close()
			b.ResetTimer()
			for range b.N {
				b.StopTimer()
				if clean {
					if err := n.Close(); err != nil {
						b.Fatal(err)
					}
				} else {
					n.Kill()
				}
				b.StartTimer()
				n = start()
			}
			b.StopTimer()
			n.Close()
		})
	}
}
