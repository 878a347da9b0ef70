package lockbench

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"cellar/lock"
	"cellar/lock/locktest"
	lockpb "cellar/proto/cellar/lock/v1"
)

// CellarSystem is a 3-replica Cellar lock service on loopback with default
// settings, in a temporary directory.
type CellarSystem struct {
	dir    string
	c      *locktest.Cluster
	killed int
}

// NewCellarSystem starts the cluster (dir "" = a new temporary directory,
// removed by Close).
func NewCellarSystem(ctx context.Context) (*CellarSystem, error) {
	dir, err := os.MkdirTemp("", "cellar-lockbench-")
	if err != nil {
		return nil, err
	}
	c, err := locktest.Start(3, dir, lock.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	if _, err := c.Leader(ctx); err != nil {
		c.Close()
		os.RemoveAll(dir)
		return nil, err
	}
	return &CellarSystem{dir: dir, c: c, killed: -1}, nil
}

func (s *CellarSystem) Name() string { return "cellar" }

func (s *CellarSystem) Close() error {
	err := s.c.Close()
	os.RemoveAll(s.dir)
	return err
}

// KillLeader closes the leader replica (no leadership hand-over); the clock
// starts before Close, so its duration counts against Cellar.
func (s *CellarSystem) KillLeader(ctx context.Context) (time.Time, error) {
	i, err := s.c.Leader(ctx)
	if err != nil {
		return time.Time{}, err
	}
	s.killed = i
	start := time.Now()
	return start, s.c.Stop(i)
}

func (s *CellarSystem) RestoreAll(ctx context.Context) error {
	if s.killed >= 0 {
		if err := s.c.Restart(s.killed); err != nil {
			return err
		}
		s.killed = -1
	}
	_, err := s.c.Leader(ctx)
	return err
}

type cellarWorker struct {
	sys     *CellarSystem
	c       *lock.Client
	path    string
	version uint64
	raw     lockpb.Lock_KeepAliveClient
	rawConn *grpc.ClientConn
	kaID    uint64
}

func (s *CellarSystem) NewWorker(ctx context.Context, i int) (Worker, error) {
	c, err := lock.Dial(ctx, lock.ClientOptions{Addrs: s.c.Addrs(), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return nil, err
	}
	w := &cellarWorker{sys: s, c: c, path: fmt.Sprintf("/bench/w%d", i)}
	if w.version, err = c.Set(ctx, w.path, []byte("0")); err != nil {
		c.Close()
		return nil, err
	}
	return w, nil
}

func (w *cellarWorker) LockPair(ctx context.Context) error {
	if _, err := w.c.Acquire(ctx, w.path, lock.ModeExclusive); err != nil {
		return err
	}
	return w.c.Release(ctx, w.path)
}

func (w *cellarWorker) CASWrite(ctx context.Context) error {
	v, err := w.c.Set(ctx, w.path, []byte("x"), lock.IfVersion(w.version))
	if errors.Is(err, lock.ErrVersionMismatch) || errors.Is(err, lock.ErrOutcomeUnknown) {
		n, _, gerr := w.c.Get(ctx, w.path) // resynchronise after an ambiguous write
		if gerr != nil {
			return gerr
		}
		w.version = n.Version
		return err
	}
	if err == nil {
		w.version = v
	}
	return err
}

func (w *cellarWorker) Read(ctx context.Context) error {
	_, _, err := w.c.Get(ctx, w.path)
	return err
}

// KeepAlive sends one keep-alive on a stream of the worker's own (raw) and
// waits for its acknowledgement; the client's background keep-alives go on
// beside it.
func (w *cellarWorker) KeepAlive(ctx context.Context) error {
	if w.raw == nil {
		st, err := w.c.Status(ctx, "")
		if err != nil {
			return err
		}
		if w.rawConn, err = grpc.NewClient(st.LeaderGRPCAddr, grpc.WithTransportCredentials(insecure.NewCredentials())); err != nil {
			return err
		}
		if w.raw, err = lockpb.NewLockClient(w.rawConn).KeepAlive(context.Background()); err != nil {
			return err
		}
	}
	w.kaID++
	if err := w.raw.Send(&lockpb.KeepAliveRequest{SessionId: w.c.SessionID(), Id: w.kaID}); err != nil {
		return err
	}
	for {
		r, err := w.raw.Recv()
		if err != nil {
			return err
		}
		if r.AckId == w.kaID {
			return nil
		}
	}
}

func (w *cellarWorker) Close() error {
	if w.raw != nil {
		w.raw.CloseSend()
		w.rawConn.Close()
	}
	return w.c.Close()
}
