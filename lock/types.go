package lock

import (
	"fmt"
	"time"
)

// Mode is a lock mode.
type Mode uint8

// Lock modes (values equal lockpb.LockMode).
const (
	ModeNone      Mode = 0
	ModeExclusive Mode = 1
	ModeShared    Mode = 2
)

func (m Mode) String() string {
	switch m {
	case ModeNone:
		return "none"
	case ModeExclusive:
		return "exclusive"
	case ModeShared:
		return "shared"
	}
	return fmt.Sprintf("Mode(%d)", uint8(m))
}

// Sequencer names one acquisition of a lock: the node, the mode and the
// lock's generation (the Raft index of the command that granted it; unique
// and increasing). A server that receives a sequencer from a lock holder
// checks it with CheckSequencer before acting on it, which fences a holder
// that has lost its lock.
type Sequencer struct {
	Path       string
	Mode       Mode
	Generation uint64
}

func (s Sequencer) String() string { return fmt.Sprintf("%s:%s:%d", s.Path, s.Mode, s.Generation) }

// EventType is the kind of an Event (values equal lockpb.EventType).
type EventType uint8

// Event types.
const (
	EventContentChanged  EventType = 1
	EventNodeDeleted     EventType = 2
	EventChildAdded      EventType = 3
	EventChildRemoved    EventType = 4
	EventLockAcquired    EventType = 5
	EventLockReleased    EventType = 6
	EventSessionExpiring EventType = 7
	EventEventsLost      EventType = 8
)

func (t EventType) String() string {
	names := [...]string{"", "content-changed", "node-deleted", "child-added", "child-removed",
		"lock-acquired", "lock-released", "session-expiring", "events-lost"}
	if int(t) < len(names) && t != 0 {
		return names[t]
	}
	return fmt.Sprintf("EventType(%d)", uint8(t))
}

// Event is one notification on a session, in the session's order (Seq
// increases by one per event).
type Event struct {
	Seq        uint64
	Type       EventType
	Path       string // the watched node; for child events, the parent
	Child      string // child events: the child's name
	Version    uint64 // content events: the node's new version
	Generation uint64 // lock events
}

// Node is a snapshot of one node.
type Node struct {
	Path           string
	Content        []byte
	Version        uint64 // 1 on creation, +1 per Set
	EphemeralOwner uint64 // session ID; 0 if persistent
	Ctime, Mtime   time.Time
	LockMode       Mode // ModeNone if unlocked
	LockGeneration uint64
	LockHolders    []uint64 // session IDs, sorted
}

// Member is one replica as the member table knows it.
type Member struct {
	ID, RaftAddr, GRPCAddr string
	Voter                  bool
}
