package standalone_test

import (
	"context"
	"errors"
	"log/slog"
	"testing"
	"time"

	"go.uber.org/goleak"

	"cellar/client"
	"cellar/internal/standalone"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func start(t *testing.T, ctx context.Context, dir string) *standalone.Node {
	t.Helper()
	n, err := standalone.Start(ctx, standalone.Options{Dir: dir, Listen: "127.0.0.1:0", Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := n.Ready(ctx); err != nil {
		n.Close()
		t.Fatal(err)
	}
	return n
}

// TestCloseRestartKill: a row written before Close is served after a
// restart, and again after Kill (no flush: the commit log is replayed)
// and a restart; a second Start
// on a directory in use fails with ErrDirInUse; nothing leaks.
func TestCloseRestartKill(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dir := t.TempDir()
	n := start(t, ctx, dir)
	if _, err := standalone.Start(ctx, standalone.Options{Dir: dir, Listen: "127.0.0.1:0"}); !errors.Is(err, standalone.ErrDirInUse) {
		t.Fatalf("second Start on %s = %v, want ErrDirInUse", dir, err)
	}
	put := func(n *standalone.Node, row string) {
		c, err := client.Dial(ctx, []string{n.Addr()}, client.WithLogger(slog.New(slog.DiscardHandler)))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		err = c.Admin().CreateTable(ctx, "t", map[string]client.GCPolicy{"f": client.MaxVersionsPolicy(1)})
		if err != nil && !errors.Is(err, client.ErrTableExists) {
			t.Fatal(err)
		}
		m := client.NewMutation()
		m.Set("f", "q", 1, []byte(row))
		if err := c.Open("t").Apply(ctx, row, m); err != nil {
			t.Fatal(err)
		}
	}
	check := func(n *standalone.Node, rows ...string) {
		c, err := client.Dial(ctx, []string{n.Addr()}, client.WithLogger(slog.New(slog.DiscardHandler)))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		for _, row := range rows {
			r, err := c.Open("t").ReadRow(ctx, row)
			if err != nil || len(r["f"]) != 1 || string(r["f"][0].Value) != row {
				t.Fatalf("ReadRow(%q) = %v, %v", row, r, err)
			}
		}
	}
	put(n, "a")
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	n = start(t, ctx, dir)
	check(n, "a")
	put(n, "b")
	n.Kill()
	n = start(t, ctx, dir)
	check(n, "a", "b")
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
}
