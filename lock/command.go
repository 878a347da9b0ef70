package lock

import (
	"encoding/binary"
	"fmt"
	"strings"
)

// Command format (part of the replicated log; never change, add a version):
//
//	+---------+------+------------------+-----------------+-------+------------------+-----------------+------+
//	| ver u8  | op u8| now int64 LE (8) | session uvarint | flags | expected uvarint | lease_ns uvarint| mode |
//	+---------+------+------------------+-----------------+-------+------------------+-----------------+------+
//	| path: uvarint len + bytes | content: uvarint len + bytes | a: uvarint len + bytes | b: uvarint len + bytes |
//	+---------------------------+------------------------------+------------------------+------------------------+
//
// Every command carries every field (unused ones are zero) so there is one
// decoder. flags bit 0: has expected version; bit 1: ephemeral (Set) /
// remove (Member); bit 2: watch content; bit 3: watch children. a and b are
// the member's raft and gRPC addresses (opMember; path is its ID). now is the
// leader's wall clock when it proposed the command: the only time Apply sees.
const cmdVersion = 1

type opCode uint8

const (
	opOpenSession  opCode = 1
	opCloseSession opCode = 2
	opExpire       opCode = 3
	opSet          opCode = 4
	opDelete       opCode = 5
	opAcquire      opCode = 6
	opRelease      opCode = 7
	opWatch        opCode = 8
	opMember       opCode = 9
	opExpiring     opCode = 10
	opMax                 = opExpiring
)

const (
	flagHasExpected = 1 << iota
	flagEphemeral   // opSet; opMember: remove
	flagWatchContent
	flagWatchChildren
)

// Decoding limits: a decoder never trusts a length beyond these.
const (
	maxPathLen       = 1024
	maxAddrLen       = 512
	maxContentDecode = 64 << 20
)

type command struct {
	op       opCode
	now      int64
	session  uint64
	flags    uint8
	expected uint64
	leaseNS  uint64
	mode     Mode
	path     string
	content  []byte
	a, b     string
}

func (c *command) encode() []byte {
	buf := make([]byte, 0, 32+len(c.path)+len(c.content)+len(c.a)+len(c.b))
	buf = append(buf, cmdVersion, byte(c.op))
	buf = binary.LittleEndian.AppendUint64(buf, uint64(c.now))
	buf = binary.AppendUvarint(buf, c.session)
	buf = append(buf, c.flags)
	buf = binary.AppendUvarint(buf, c.expected)
	buf = binary.AppendUvarint(buf, c.leaseNS)
	buf = append(buf, byte(c.mode))
	buf = appendBytes(buf, []byte(c.path))
	buf = appendBytes(buf, c.content)
	buf = appendBytes(buf, []byte(c.a))
	buf = appendBytes(buf, []byte(c.b))
	return buf
}

func appendBytes(buf, b []byte) []byte {
	buf = binary.AppendUvarint(buf, uint64(len(b)))
	return append(buf, b...)
}

// decoder reads the little formats of this package; the first error sticks.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail(what string) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: truncated or bad %s", ErrCorrupt, what)
	}
}

func (d *decoder) u8(what string) uint8 {
	if d.err != nil || len(d.b) < 1 {
		d.fail(what)
		return 0
	}
	v := d.b[0]
	d.b = d.b[1:]
	return v
}

func (d *decoder) fixed64(what string) uint64 {
	if d.err != nil || len(d.b) < 8 {
		d.fail(what)
		return 0
	}
	v := binary.LittleEndian.Uint64(d.b)
	d.b = d.b[8:]
	return v
}

func (d *decoder) uvarint(what string) uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail(what)
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint(what string) int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail(what)
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) bytes(what string, limit int) []byte {
	n := d.uvarint(what)
	if d.err != nil {
		return nil
	}
	if n > uint64(limit) || n > uint64(len(d.b)) {
		d.fail(what)
		return nil
	}
	v := d.b[:n:n]
	d.b = d.b[n:]
	return v
}

// count reads a collection length, checking it against the bytes left (each
// element takes at least minSize bytes), so a lying length cannot make the
// caller allocate.
func (d *decoder) count(what string, minSize int) int {
	n := d.uvarint(what)
	if d.err == nil && n > uint64(len(d.b)/minSize) {
		d.fail(what)
		return 0
	}
	return int(n)
}

func decodeCommand(b []byte) (*command, error) {
	d := &decoder{b: b}
	if v := d.u8("version"); d.err == nil && v != cmdVersion {
		return nil, fmt.Errorf("%w: unknown command version %d", ErrCorrupt, v)
	}
	c := &command{}
	c.op = opCode(d.u8("op"))
	c.now = int64(d.fixed64("now"))
	c.session = d.uvarint("session")
	c.flags = d.u8("flags")
	c.expected = d.uvarint("expected")
	c.leaseNS = d.uvarint("lease")
	c.mode = Mode(d.u8("mode"))
	c.path = string(d.bytes("path", maxPathLen))
	if content := d.bytes("content", maxContentDecode); len(content) > 0 {
		c.content = append([]byte(nil), content...)
	}
	c.a = string(d.bytes("addr", maxAddrLen))
	c.b = string(d.bytes("addr", maxAddrLen))
	if d.err != nil {
		return nil, d.err
	}
	if len(d.b) != 0 {
		return nil, fmt.Errorf("%w: %d trailing bytes after command", ErrCorrupt, len(d.b))
	}
	if c.op == 0 || c.op > opMax {
		return nil, fmt.Errorf("%w: unknown op %d", ErrCorrupt, c.op)
	}
	if c.mode > ModeShared {
		return nil, fmt.Errorf("%w: unknown lock mode %d", ErrCorrupt, c.mode)
	}
	return c, nil
}

// ValidatePath reports whether p is a valid node path: absolute, at most
// 1024 bytes, components non-empty, not "." or "..", and free of control
// characters. "/" (the root) is valid only for List and Watch.
func ValidatePath(p string) error {
	if p == "/" {
		return nil
	}
	if len(p) > maxPathLen {
		return fmt.Errorf("%w: %d bytes, the limit is %d", ErrInvalidPath, len(p), maxPathLen)
	}
	if !strings.HasPrefix(p, "/") {
		return fmt.Errorf("%w: %q is not absolute", ErrInvalidPath, p)
	}
	for _, comp := range strings.Split(p[1:], "/") {
		if comp == "" || comp == "." || comp == ".." {
			return fmt.Errorf("%w: %q has an empty, \".\" or \"..\" component", ErrInvalidPath, p)
		}
	}
	for i := 0; i < len(p); i++ {
		if p[i] < 0x20 || p[i] == 0x7f {
			return fmt.Errorf("%w: %q has a control character", ErrInvalidPath, p)
		}
	}
	return nil
}

// validateNodePath is ValidatePath minus the root.
func validateNodePath(p string) error {
	if p == "/" {
		return fmt.Errorf("%w: the root is not a node", ErrInvalidPath)
	}
	return ValidatePath(p)
}

// split returns the parent directory and the last component of a valid
// non-root path.
func split(p string) (parent, name string) {
	i := strings.LastIndexByte(p, '/')
	if i == 0 {
		return "/", p[1:]
	}
	return p[:i], p[i+1:]
}
