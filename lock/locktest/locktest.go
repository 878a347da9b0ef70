// Package locktest runs an in-process lock-service cluster on loopback for
// tests and benchmarks: replicas can be stopped and restarted from their data
// directories, and a client's connections can be cut (a partition).
//
// A Cluster is safe for use by one goroutine at a time.
package locktest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"cellar/lock"
)

// Cluster is n replicas bootstrapped together.
type Cluster struct {
	base    lock.Options
	dir     string
	peers   []lock.Peer
	servers []*lock.Server // nil while stopped
}

// FastOptions are raft and lease settings for tests: 200 ms heartbeat and
// election timeouts.
func FastOptions() lock.Options {
	return lock.Options{
		HeartbeatTimeout: 200 * time.Millisecond, ElectionTimeout: 200 * time.Millisecond,
		LeaderLeaseTimeout: 100 * time.Millisecond, DefaultLease: 2 * time.Second, MinLease: 100 * time.Millisecond,
		Logger: slog.New(slog.DiscardHandler),
	}
}

// Start starts n replicas under dir with base options (ID, Dir, addresses
// and Bootstrap are filled in per replica).
func Start(n int, dir string, base lock.Options) (*Cluster, error) {
	c := &Cluster{base: base, dir: dir, servers: make([]*lock.Server, n)}
	addrs, err := freeAddrs(2 * n)
	if err != nil {
		return nil, err
	}
	for i := range n {
		c.peers = append(c.peers, lock.Peer{ID: "r" + strconv.Itoa(i), RaftAddr: addrs[2*i], GRPCAddr: addrs[2*i+1]})
	}
	for i := range n {
		if err := c.Restart(i); err != nil {
			c.Close()
			return nil, err
		}
	}
	return c, nil
}

// freeAddrs picks n distinct free loopback ports (all held open while
// picking, so none is handed out twice).
func freeAddrs(n int) ([]string, error) {
	var out []string
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		defer l.Close()
		out = append(out, l.Addr().String())
	}
	return out, nil
}

// Addrs are the replicas' gRPC addresses.
func (c *Cluster) Addrs() []string {
	out := make([]string, len(c.peers))
	for i, p := range c.peers {
		out[i] = p.GRPCAddr
	}
	return out
}

// Peers are the replicas' IDs and addresses.
func (c *Cluster) Peers() []lock.Peer { return c.peers }

// Server returns replica i (nil if stopped).
func (c *Cluster) Server(i int) *lock.Server { return c.servers[i] }

// Stop closes replica i (its data directory stays).
func (c *Cluster) Stop(i int) error {
	s := c.servers[i]
	if s == nil {
		return nil
	}
	c.servers[i] = nil
	return s.Close()
}

// Shutdown stops replica i gracefully (a leader hands leadership over first).
func (c *Cluster) Shutdown(i int) error {
	s := c.servers[i]
	if s == nil {
		return nil
	}
	c.servers[i] = nil
	return s.Shutdown()
}

// Restart starts replica i from its data directory.
func (c *Cluster) Restart(i int) error {
	if c.servers[i] != nil {
		return fmt.Errorf("locktest: replica %d is running", i)
	}
	p := c.peers[i]
	o := c.base
	o.ID, o.Dir = p.ID, filepath.Join(c.dir, p.ID)
	o.Listen, o.RaftBind, o.Bootstrap = p.GRPCAddr, p.RaftAddr, c.peers
	var err error
	for attempt := 0; attempt < 50; attempt++ { // the old sockets may linger briefly
		var s *lock.Server
		if s, err = lock.Start(o); err == nil {
			c.servers[i] = s
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return err
}

// Leader waits until a running replica leads and returns its index.
func (c *Cluster) Leader(ctx context.Context) (int, error) {
	for {
		for i, s := range c.servers {
			if s != nil && s.IsLeader() {
				return i, nil
			}
		}
		select {
		case <-ctx.Done():
			return -1, fmt.Errorf("locktest: no leader: %w", ctx.Err())
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// Close stops every replica.
func (c *Cluster) Close() error {
	var errs []error
	for i := range c.servers {
		errs = append(errs, c.Stop(i))
	}
	return errors.Join(errs...)
}

// Partition is a dialer whose connections can be cut: while cut, existing
// connections are closed and new dials fail, as if the client were cut off
// from every replica. Safe for concurrent use.
type Partition struct {
	mu    sync.Mutex
	cut   bool
	conns map[net.Conn]bool
}

// NewPartition returns a healed partition.
func NewPartition() *Partition { return &Partition{conns: map[net.Conn]bool{}} }

// Dial is a lock.ClientOptions.Dialer.
func (p *Partition) Dial(ctx context.Context, addr string) (net.Conn, error) {
	p.mu.Lock()
	cut := p.cut
	p.mu.Unlock()
	if cut {
		return nil, errors.New("locktest: partitioned")
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cut {
		conn.Close()
		return nil, errors.New("locktest: partitioned")
	}
	p.conns[conn] = true
	return conn, nil
}

// Cut closes every connection and refuses new ones.
func (p *Partition) Cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = true
	for conn := range p.conns {
		conn.Close()
	}
	p.conns = map[net.Conn]bool{}
}

// Heal allows connections again.
func (p *Partition) Heal() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = false
}
