package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"

	"cellar/lock/lockbench"
)

// etcdSystem is 3 embedded etcd members on loopback with default settings
// (100 ms heartbeat, 1 s election timeout), each with its own data dir.
type etcdSystem struct {
	dir     string
	cfgs    []*embed.Config
	members []*embed.Etcd
	eps     []string
	admin   *clientv3.Client
	killed  int
	closing chan struct{} // closed when the killed member's Close returns
}

func freePort() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

func newEtcdSystem(ctx context.Context) (*etcdSystem, error) {
	dir, err := os.MkdirTemp("", "etcd-lockbench-")
	if err != nil {
		return nil, err
	}
	s := &etcdSystem{dir: dir, killed: -1}
	var initial []string
	type addrs struct{ peer, client string }
	var as []addrs
	for i := range 3 {
		p, err := freePort()
		if err != nil {
			return nil, err
		}
		c, err := freePort()
		if err != nil {
			return nil, err
		}
		as = append(as, addrs{p, c})
		initial = append(initial, fmt.Sprintf("m%d=http://%s", i, p))
		s.eps = append(s.eps, c)
	}
	for i, a := range as {
		cfg := embed.NewConfig()
		cfg.Name = fmt.Sprintf("m%d", i)
		cfg.Dir = filepath.Join(dir, cfg.Name)
		pu, _ := url.Parse("http://" + a.peer)
		cu, _ := url.Parse("http://" + a.client)
		cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{*pu}, []url.URL{*pu}
		cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{*cu}, []url.URL{*cu}
		cfg.InitialCluster = strings.Join(initial, ",")
		cfg.InitialClusterToken = "lockbench"
		cfg.LogLevel = "error"
		cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zap.NewNop())
		s.cfgs = append(s.cfgs, cfg)
	}
	s.members = make([]*embed.Etcd, 3)
	for i := range 3 {
		if err := s.start(i); err != nil {
			s.Close()
			return nil, err
		}
	}
	for _, m := range s.members {
		select {
		case <-m.Server.ReadyNotify():
		case <-ctx.Done():
			s.Close()
			return nil, ctx.Err()
		}
	}
	if s.admin, err = clientv3.New(clientv3.Config{Endpoints: s.eps, DialTimeout: 5 * time.Second, Logger: zap.NewNop()}); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

func (s *etcdSystem) start(i int) error {
	e, err := embed.StartEtcd(s.cfgs[i])
	if err != nil {
		return err
	}
	s.members[i] = e
	return nil
}

func (s *etcdSystem) Name() string { return "etcd" }

func (s *etcdSystem) Close() error {
	if s.closing != nil {
		<-s.closing
	}
	if s.admin != nil {
		s.admin.Close()
	}
	for _, m := range s.members {
		if m != nil {
			m.Close()
		}
	}
	return os.RemoveAll(s.dir)
}

func (s *etcdSystem) leader() int {
	for i, m := range s.members {
		if m != nil && m.Server.Leader() == m.Server.MemberID() {
			return i
		}
	}
	return -1
}

// KillLeader hard-stops the leader's raft node (a kill: Close alone would
// first hand leadership over); the clock starts before HardStop, as Cellar's
// starts before Close. HardStop usually returns within tens of ms but has
// taken 1.4 s, while the other members elected a new leader: a clock
// started after it then measured 9 ms of failover. The member's servers are
// closed in the background (Close waits for in-flight requests, which would
// otherwise delay the first write attempt).
func (s *etcdSystem) KillLeader(ctx context.Context) (time.Time, error) {
	for {
		if i := s.leader(); i >= 0 {
			m := s.members[i]
			start := time.Now()
			m.Server.HardStop()
			s.closing = make(chan struct{})
			go func() { defer close(s.closing); m.Close() }()
			s.members[i] = nil
			s.killed = i
			return start, nil
		}
		select {
		case <-ctx.Done():
			return time.Time{}, ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
}

func (s *etcdSystem) RestoreAll(ctx context.Context) error {
	if s.closing != nil {
		<-s.closing
		s.closing = nil
	}
	if s.killed >= 0 {
		if err := s.start(s.killed); err != nil {
			return err
		}
		select {
		case <-s.members[s.killed].Server.ReadyNotify():
		case <-ctx.Done():
			return ctx.Err()
		}
		s.killed = -1
	}
	return nil
}

type etcdWorker struct {
	cli  *clientv3.Client
	sess *concurrency.Session
	mu   *concurrency.Mutex
	key  string
	rev  int64
}

func (s *etcdSystem) NewWorker(ctx context.Context, i int) (lockbench.Worker, error) {
	cli, err := clientv3.New(clientv3.Config{Endpoints: s.eps, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		return nil, err
	}
	sess, err := concurrency.NewSession(cli, concurrency.WithTTL(12))
	if err != nil {
		cli.Close()
		return nil, err
	}
	w := &etcdWorker{cli: cli, sess: sess, key: fmt.Sprintf("/bench/w%d", i)}
	w.mu = concurrency.NewMutex(sess, "/bench/lock/"+fmt.Sprint(i))
	resp, err := cli.Put(ctx, w.key, "0")
	if err != nil {
		w.Close()
		return nil, err
	}
	w.rev = resp.Header.Revision
	return w, nil
}

func (w *etcdWorker) LockPair(ctx context.Context) error {
	if err := w.mu.Lock(ctx); err != nil {
		return err
	}
	return w.mu.Unlock(ctx)
}

// CASWrite is a transaction: put if the key's mod revision is the one last
// written (etcd's compare-and-set).
func (w *etcdWorker) CASWrite(ctx context.Context) error {
	resp, err := w.cli.Txn(ctx).If(clientv3.Compare(clientv3.ModRevision(w.key), "=", w.rev)).
		Then(clientv3.OpPut(w.key, "x")).Commit()
	if err != nil {
		if g, gerr := w.cli.Get(ctx, w.key); gerr == nil && len(g.Kvs) == 1 {
			w.rev = g.Kvs[0].ModRevision
		}
		return err
	}
	if !resp.Succeeded {
		g, err := w.cli.Get(ctx, w.key)
		if err != nil {
			return err
		}
		w.rev = g.Kvs[0].ModRevision
		return errors.New("etcd: compare-and-set lost")
	}
	w.rev = resp.Header.Revision
	return nil
}

func (w *etcdWorker) Read(ctx context.Context) error {
	_, err := w.cli.Get(ctx, w.key) // linearizable by default
	return err
}

func (w *etcdWorker) KeepAlive(ctx context.Context) error {
	_, err := w.cli.KeepAliveOnce(ctx, w.sess.Lease())
	return err
}

func (w *etcdWorker) Close() error {
	w.sess.Close()
	return w.cli.Close()
}
