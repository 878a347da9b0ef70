package wire

import (
	"fmt"
	"sync"

	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/proto"
)

// codec is the protobuf codec of every dfs connection (client and server
// side, set by DialOptions and ServerOptions). It encodes exactly as gRPC's
// default "proto" codec, so peers need not use it; it differs in memory:
//
//   - Buffers come from pool, whose size classes fit write packets (a 64 KiB
//     packet's message takes a 68 KiB buffer, where gRPC's default pool
//     hands out a 1 MiB one) and which does not zero buffers on Get:
//     every user overwrites the length it asked for (a marshal, a frame
//     read, a copy). Zeroing a 1 MiB buffer per 64 KiB packet per hop was
//     a tenth of the write pipeline's CPU.
//   - Unmarshal of a message that arrived in one buffer decodes it in
//     place instead of first copying it into a contiguous one.
//   - Unmarshal into a *Received decodes a write packet without copying
//     its data (see Received).
type codec struct{}

var _ encoding.CodecV2 = codec{}

// Name is "proto", the content-subtype of the default codec: the wire
// format is the same.
func (codec) Name() string { return "proto" }

func (codec) Marshal(v any) (mem.BufferSlice, error) {
	m, ok := v.(proto.Message)
	if !ok {
		return nil, fmt.Errorf("cellar/dfs/wire: cannot marshal %T", v)
	}
	size := proto.Size(m)
	opts := proto.MarshalOptions{UseCachedSize: true}
	if mem.IsBelowBufferPoolingThreshold(size) {
		b, err := opts.Marshal(m)
		if err != nil {
			return nil, err
		}
		return mem.BufferSlice{mem.SliceBuffer(b)}, nil
	}
	buf := pool.Get(size)
	if _, err := opts.MarshalAppend((*buf)[:0], m); err != nil {
		pool.Put(buf)
		return nil, err
	}
	return mem.BufferSlice{mem.NewBuffer(buf, pool)}, nil
}

func (codec) Unmarshal(data mem.BufferSlice, v any) error {
	if r, ok := v.(*Received); ok {
		return r.unmarshal(data)
	}
	m, ok := v.(proto.Message)
	if !ok {
		return fmt.Errorf("cellar/dfs/wire: cannot unmarshal into %T", v)
	}
	if len(data) == 1 {
		return proto.Unmarshal(data[0].ReadOnlyData(), m)
	}
	buf := data.MaterializeToBuffer(pool)
	defer buf.Free()
	return proto.Unmarshal(buf.ReadOnlyData(), m)
}

// pool is the buffer pool of every dfs connection (see codec).
var pool = newTieredPool([]int{
	4 << 10, 16 << 10, 32 << 10,
	64<<10 + 4<<10, 128<<10 + 4<<10, 256<<10 + 4<<10, 512<<10 + 4<<10,
	PacketSize + 4<<10, MaxMessage,
})

// tieredPool is a mem.BufferPool with one sync.Pool per size class. Get
// returns a buffer of the smallest class that holds length, not zeroed;
// beyond the largest class it allocates. Safe for concurrent use.
type tieredPool struct {
	sizes []int // ascending
	pools []sync.Pool
}

var _ mem.BufferPool = (*tieredPool)(nil)

func newTieredPool(sizes []int) *tieredPool {
	return &tieredPool{sizes: sizes, pools: make([]sync.Pool, len(sizes))}
}

func (p *tieredPool) Get(length int) *[]byte {
	for i, s := range p.sizes {
		if length <= s {
			if b, ok := p.pools[i].Get().(*[]byte); ok {
				*b = (*b)[:length]
				return b
			}
			b := make([]byte, length, s)
			return &b
		}
	}
	b := make([]byte, length)
	return &b
}

func (p *tieredPool) Put(b *[]byte) {
	c := cap(*b)
	for i := len(p.sizes) - 1; i >= 0; i-- {
		if c >= p.sizes[i] {
			p.pools[i].Put(b)
			return
		}
	}
}
