package wire

import (
	"bytes"
	"testing"

	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	dfspb "cellar/proto/cellar/dfs/v1"
)

func packetMsg(seq, off uint64, data []byte, sync bool) *dfspb.WriteChunkRequest {
	return &dfspb.WriteChunkRequest{Msg: &dfspb.WriteChunkRequest_Packet{Packet: &dfspb.WritePacket{Seq: seq, Offset: off, Data: data, Sync: sync}}}
}

func samples() []*dfspb.WriteChunkRequest {
	return []*dfspb.WriteChunkRequest{
		packetMsg(1, 0, bytes.Repeat([]byte("x"), 65536), true),
		packetMsg(7, 123456, []byte("abc"), false),
		packetMsg(0, 0, nil, true),
		packetMsg(0, 0, nil, false),
		{Msg: &dfspb.WriteChunkRequest_Header{Header: &dfspb.WriteChunkHeader{Handle: 9, Version: 2, Downstream: []string{"a:1"}}}},
		{},
	}
}

// TestDecodePacketMatchesProto: the in-place decoder takes every packet a
// writer sends and decodes it as protobuf does; anything else it leaves to
// protobuf.
func TestDecodePacketMatchesProto(t *testing.T) {
	for i, want := range samples() {
		b, err := proto.Marshal(want)
		if err != nil {
			t.Fatal(err)
		}
		var got dfspb.WriteChunkRequest
		ok := decodePacket(b, &got)
		if isPacket := want.GetPacket() != nil; ok != isPacket {
			t.Errorf("sample %d: decodePacket = %v, want %v", i, ok, isPacket)
			continue
		}
		if ok && !proto.Equal(&got, want) {
			t.Errorf("sample %d: decodePacket = %v, want %v", i, &got, want)
		}
	}
	// Valid encodings the writer never sends: protobuf decides.
	for _, b := range [][]byte{
		protowire.AppendVarint(protowire.AppendTag(nil, 1, protowire.VarintType), 5),                                               // packet field as varint
		append(protowire.AppendBytes(protowire.AppendTag(nil, 2, protowire.BytesType), nil), 0x10, 1),                              // trailing field
		protowire.AppendBytes(protowire.AppendTag(nil, 2, protowire.BytesType), []byte{0x20, 2}),                                   // sync = 2
		protowire.AppendBytes(protowire.AppendTag(nil, 2, protowire.BytesType), []byte{0x08, 1, 0x08, 2}),                          // seq twice
		protowire.AppendBytes(protowire.AppendTag(nil, 2, protowire.BytesType), []byte{0x28, 1}),                                   // unknown field 5
		protowire.AppendBytes(protowire.AppendTag(nil, 2, protowire.BytesType), protowire.AppendTag(nil, 3, protowire.VarintType)), // data as varint
	} {
		var m dfspb.WriteChunkRequest
		if decodePacket(b, &m) {
			t.Errorf("decodePacket(%x) = true, want false", b)
		}
	}
}

// TestReceivedAliasesUntilRelease: a packet received in several buffers is
// decoded into one pooled buffer that its data aliases until Release.
func TestReceivedAliasesUntilRelease(t *testing.T) {
	want := packetMsg(3, 65536, bytes.Repeat([]byte("0123456789"), 10000), true)
	enc, err := codec{}.Marshal(want)
	if err != nil {
		t.Fatal(err)
	}
	flat := enc.Materialize()
	enc.Free()
	var parts mem.BufferSlice
	for len(flat) > 0 {
		n := min(len(flat), 16384)
		parts = append(parts, mem.SliceBuffer(bytes.Clone(flat[:n])))
		flat = flat[n:]
	}
	var r Received
	if err := (codec{}).Unmarshal(parts, &r); err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(r.Msg, want) {
		t.Fatal("Received.Msg differs from the packet sent")
	}
	if r.buf == nil {
		t.Fatal("packet decoded by copy, not in place")
	}
	r.Release()
	if r.Msg != nil || r.buf != nil {
		t.Fatal("Release left the message or its buffer")
	}
	r.Release() // twice is fine

	// A header decodes by copy and holds no buffer.
	hdr := samples()[4]
	b, _ := proto.Marshal(hdr)
	if err := (codec{}).Unmarshal(mem.BufferSlice{mem.SliceBuffer(b)}, &r); err != nil || !proto.Equal(r.Msg, hdr) || r.buf != nil {
		t.Fatalf("header: %v, %v, buf %v", err, r.Msg, r.buf)
	}
	if err := (codec{}).Unmarshal(mem.BufferSlice{mem.SliceBuffer([]byte{0x12, 0x05})}, &r); err == nil {
		t.Fatal("truncated message decoded without error")
	}
}

func TestCodecRoundTrip(t *testing.T) {
	for i, want := range samples() {
		enc, err := codec{}.Marshal(want)
		if err != nil {
			t.Fatal(err)
		}
		var got dfspb.WriteChunkRequest
		if err := (codec{}).Unmarshal(enc, &got); err != nil || !proto.Equal(&got, want) {
			t.Errorf("sample %d: round trip = %v, %v", i, &got, err)
		}
		enc.Free()
	}
}

func TestTieredPoolSizes(t *testing.T) {
	p := newTieredPool([]int{4096, 69632})
	for _, n := range []int{1, 4096, 4097, 65536 + 30, 69632, 69633} {
		b := p.Get(n)
		if len(*b) != n || cap(*b) < n {
			t.Errorf("Get(%d) = len %d cap %d", n, len(*b), cap(*b))
		}
		p.Put(b)
	}
}

// FuzzDecodePacket: whatever the in-place decoder accepts, protobuf
// decodes to the same message.
func FuzzDecodePacket(f *testing.F) {
	for _, m := range samples() {
		b, _ := proto.Marshal(m)
		if len(b) > 1000 {
			b, _ = proto.Marshal(packetMsg(1, 2, []byte("short"), true))
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var got dfspb.WriteChunkRequest
		if !decodePacket(b, &got) {
			return
		}
		var want dfspb.WriteChunkRequest
		if err := proto.Unmarshal(b, &want); err != nil {
			t.Fatalf("decodePacket accepted what protobuf rejects: %v", err)
		}
		if !proto.Equal(&got, &want) {
			t.Fatalf("decodePacket = %v, protobuf = %v", &got, &want)
		}
	})
}
