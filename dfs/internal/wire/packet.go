package wire

import (
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	dfspb "cellar/proto/cellar/dfs/v1"
)

// Received is a WriteChunkRequest received with
// stream.RecvMsg(&received) on a dfs connection. Unlike the generated
// Recv, which copies a packet's data out of gRPC's receive buffer into a
// fresh allocation on every hop, it decodes a packet in place: Msg's
// Packet.Data aliases a pooled buffer that stays valid until Release.
// A message that is not a plain packet is decoded as gRPC would.
//
// Not safe for concurrent use; the zero value is ready.
type Received struct {
	Msg *dfspb.WriteChunkRequest // replaced by each RecvMsg
	buf mem.Buffer
}

// Release returns the buffer Msg's packet data aliases; Msg must not be
// used afterwards. Release of a released Received does nothing.
func (r *Received) Release() {
	if r.buf != nil {
		r.buf.Free()
		r.buf = nil
	}
	r.Msg = nil
}

// unmarshal fills r from data, keeping the buffer Msg aliases.
func (r *Received) unmarshal(data mem.BufferSlice) error {
	r.Release()
	var buf mem.Buffer
	if len(data) == 1 {
		buf = data[0]
		buf.Ref() // gRPC frees data when Unmarshal returns
	} else {
		buf = data.MaterializeToBuffer(pool)
	}
	m := new(dfspb.WriteChunkRequest)
	if decodePacket(buf.ReadOnlyData(), m) {
		r.Msg, r.buf = m, buf
		return nil
	}
	defer buf.Free()
	if err := proto.Unmarshal(buf.ReadOnlyData(), m); err != nil {
		return err
	}
	r.Msg = m
	return nil
}

// decodePacket decodes b into m if b is a WriteChunkRequest holding a
// packet, each field at most once and no others (what every dfs writer
// sends); m's Packet.Data then aliases b. Otherwise it reports false and
// leaves the decoding to proto.Unmarshal, so odd but valid encodings keep
// protobuf's semantics and invalid ones its errors.
func decodePacket(b []byte, m *dfspb.WriteChunkRequest) bool {
	num, typ, n := protowire.ConsumeTag(b)
	if n < 0 || num != 2 || typ != protowire.BytesType {
		return false
	}
	body, k := protowire.ConsumeBytes(b[n:])
	if k < 0 || n+k != len(b) {
		return false
	}
	p := &dfspb.WritePacket{}
	var seen [5]bool
	for len(body) > 0 {
		num, typ, n := protowire.ConsumeTag(body)
		if n < 0 || num < 1 || num > 4 || seen[num] {
			return false
		}
		seen[num] = true
		body = body[n:]
		switch {
		case num == 3 && typ == protowire.BytesType:
			v, k := protowire.ConsumeBytes(body)
			if k < 0 {
				return false
			}
			p.Data = v[:len(v):len(v)]
			body = body[k:]
		case num != 3 && typ == protowire.VarintType:
			v, k := protowire.ConsumeVarint(body)
			if k < 0 {
				return false
			}
			switch num {
			case 1:
				p.Seq = v
			case 2:
				p.Offset = v
			case 4:
				if v > 1 {
					return false // protobuf reads any non-zero as true; let it
				}
				p.Sync = v == 1
			}
			body = body[k:]
		default:
			return false
		}
	}
	m.Msg = &dfspb.WriteChunkRequest_Packet{Packet: p}
	return true
}
