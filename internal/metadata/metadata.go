// Package metadata defines the METADATA table's row keys and cells, shared by
// the master (which creates and reassigns tablets), the tablet servers (which
// commit splits) and the client (which locates tablets). See
// docs/serving.md, "METADATA"; Bigtable §5.1.
//
// # Row key (part of the format; never change)
//
//	be64(table id) 0x01 end_row     a tablet with a bounded end row
//	be64(table id) 0x02             the table's last tablet (unbounded end)
//
// so METADATA rows sort by table, then end row, with the unbounded tablet
// last. The tablet of t holding row is the first METADATA row at or after
// SearchKey(t, row).
//
// A tablet's start row is not stored: it is the previous METADATA row's end
// row within the same table (empty for the first). Committing a split is then
// one row write (the left daughter's row), which is atomic.
//
// Pure functions; safe for concurrent use.
package metadata

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"

	"google.golang.org/protobuf/proto"

	datapb "cellar/proto/cellar/data/v1"
)

// TableID 0 is the METADATA table itself.
const TableID uint64 = 0

// Table is METADATA's name as clients see it.
const Table = "METADATA"

// Family and qualifiers of METADATA cells.
const (
	Family        = "info"
	QualTablet    = "tablet" // a marshalled datapb.TabletDescriptor
	QualLocation  = "loc"    // "<server id>\x00<address>" of the current assignment
	QualSplitting = "split"  // a marshalled datapb.TabletDescriptor of the left daughter, during a split
	// A merge's intent: on the right tablet's row, the merged tablet
	// (QualMerge) and the left tablet (QualMergeLeft); on the left
	// tablet's row, the merged tablet's id in decimal (QualMergeInto).
	// Deleting the left row while it still names that id commits the
	// merge; deleting QualMergeInto first aborts it (docs/serving.md).
	QualMerge     = "merge"
	QualMergeLeft = "mergeleft"
	QualMergeInto = "mergeinto"
)

const (
	bounded   = 0x01
	unbounded = 0x02
)

// ErrCorrupt is returned for METADATA bytes that do not decode.
var ErrCorrupt = errors.New("cellar/metadata: corrupt METADATA entry")

// RowKey is the METADATA row of the tablet of table with end row endRow
// (nil or empty: the table's last tablet).
func RowKey(table uint64, endRow []byte) []byte {
	k := binary.BigEndian.AppendUint64(make([]byte, 0, 9+len(endRow)), table)
	if len(endRow) == 0 {
		return append(k, unbounded)
	}
	k = append(k, bounded)
	return append(k, endRow...)
}

// SearchKey is where a scan of METADATA starts to find the tablet of table
// holding row: the first METADATA row >= SearchKey whose end row is > row.
// Because end rows are exclusive, that is the first row strictly greater
// than RowKey(table, row): SearchKey returns RowKey(table, row) + 0x00.
func SearchKey(table uint64, row []byte) []byte {
	return append(RowKey(table, row), 0)
}

// TableStart and TableEnd bound every METADATA row of table: [start, end).
func TableStart(table uint64) []byte { return binary.BigEndian.AppendUint64(nil, table) }

// TableEnd is the first key after every METADATA row of table.
func TableEnd(table uint64) []byte { return binary.BigEndian.AppendUint64(nil, table+1) }

// ParseRowKey splits a METADATA row key into table id and end row (nil for
// the unbounded tablet).
func ParseRowKey(k []byte) (table uint64, endRow []byte, err error) {
	if len(k) < 9 {
		return 0, nil, fmt.Errorf("%w: row key of %d bytes", ErrCorrupt, len(k))
	}
	table = binary.BigEndian.Uint64(k)
	switch k[8] {
	case bounded:
		if len(k) == 9 {
			return 0, nil, fmt.Errorf("%w: bounded row key with an empty end row", ErrCorrupt)
		}
		return table, k[9:], nil
	case unbounded:
		if len(k) != 9 {
			return 0, nil, fmt.Errorf("%w: unbounded row key with trailing bytes", ErrCorrupt)
		}
		return table, nil, nil
	}
	return 0, nil, fmt.Errorf("%w: row key marker %#x", ErrCorrupt, k[8])
}

// Contains reports whether row falls in [start, end) (empty end: unbounded).
func Contains(start, end, row []byte) bool {
	return bytes.Compare(row, start) >= 0 && (len(end) == 0 || bytes.Compare(row, end) < 0)
}

// EncodeTablet marshals a descriptor for the info:tablet cell.
func EncodeTablet(d *datapb.TabletDescriptor) []byte {
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(d)
	if err != nil {
		// Marshal of a well-formed message cannot fail; a nil message is a bug.
		panic(fmt.Sprintf("cellar/metadata: marshal tablet descriptor: %v", err))
	}
	return b
}

// DecodeTablet unmarshals an info:tablet cell.
func DecodeTablet(b []byte) (*datapb.TabletDescriptor, error) {
	d := new(datapb.TabletDescriptor)
	if err := proto.Unmarshal(b, d); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	return d, nil
}

// EncodeLocation and DecodeLocation are the info:loc cell.
func EncodeLocation(serverID, addr string) []byte {
	return append(append([]byte(serverID), 0), addr...)
}

// DecodeLocation splits an info:loc cell.
func DecodeLocation(b []byte) (serverID, addr string, err error) {
	i := bytes.IndexByte(b, 0)
	if i < 0 {
		return "", "", fmt.Errorf("%w: location without separator", ErrCorrupt)
	}
	return string(b[:i]), string(b[i+1:]), nil
}

// METADATA's first two tablets (docs/serving.md): the root tablet holds the
// rows of METADATA's own tablets and never splits; the META tablets hold
// the rows of every user tablet. METADATA starts with one META tablet,
// MetaTabletID; it splits like a user tablet (the right daughter keeps
// the id), so later META tablets have ids from the tablet id counter.
const (
	RootTabletID uint64 = 1
	MetaTabletID uint64 = 2
)

// InRoot reports whether METADATA row key is one of the root tablet's:
// the row of a METADATA tablet rather than of a user tablet.
func InRoot(key []byte) bool { return bytes.Compare(key, TableEnd(TableID)) < 0 }

// IsMeta reports whether d is one of METADATA's META tablets (table 0,
// not the root).
func IsMeta(d *datapb.TabletDescriptor) bool {
	return d.GetTableId() == TableID && d.GetTabletId() != RootTabletID
}

// ErrNoMetaTablet is returned by FindMetaRow when no row of the root
// tablet covers the key (the root is empty, or was read too short).
var ErrNoMetaTablet = errors.New("cellar/metadata: no META tablet holds the key")

// Row is one METADATA row: its key and its info cells by qualifier.
type Row struct {
	Key   []byte
	Cells map[string][]byte
}

// FindMetaRow returns, among rows of the root tablet sorted by key (a
// read from SearchKey(TableID, key) on, say), the row of the META tablet
// holding key: the first whose end row is greater than key (end rows are
// exclusive), the unbounded last one included. key must be a user
// tablet's METADATA row (not InRoot). Errors: ErrCorrupt for a row key
// that does not parse or is not METADATA's, ErrNoMetaTablet when no row
// holds key.
func FindMetaRow(rows []Row, key []byte) (Row, error) {
	if InRoot(key) {
		return Row{}, fmt.Errorf("%w: key %x is the root tablet's", ErrNoMetaTablet, key)
	}
	for _, r := range rows {
		table, end, err := ParseRowKey(r.Key)
		if err != nil {
			return Row{}, err
		}
		if table != TableID {
			return Row{}, fmt.Errorf("%w: row %x of table %d in the root tablet", ErrCorrupt, r.Key, table)
		}
		if end == nil || bytes.Compare(end, key) > 0 {
			return r, nil
		}
	}
	return Row{}, fmt.Errorf("%w: %x", ErrNoMetaTablet, key)
}

// Schema is METADATA's schema: one family keeping the latest version.
func Schema() *datapb.TableSchema {
	return &datapb.TableSchema{
		Name:    Table,
		TableId: TableID,
		Families: []*datapb.ColumnFamily{{
			Name:   Family,
			GcRule: &datapb.GcRule{Rule: &datapb.GcRule_MaxNumVersions{MaxNumVersions: 1}},
		}},
	}
}

// RootTablet and MetaTablet are the fixed descriptors of METADATA's tablets.
func RootTablet() *datapb.TabletDescriptor {
	return &datapb.TabletDescriptor{TableId: TableID, TabletId: RootTabletID, EndRow: TableEnd(TableID),
		Dir: TabletDir(TableID, RootTabletID), State: datapb.TabletState_TABLET_STATE_NORMAL}
}

// MetaTablet is the descriptor of the tablet holding user tablets' rows.
func MetaTablet() *datapb.TabletDescriptor {
	return &datapb.TabletDescriptor{TableId: TableID, TabletId: MetaTabletID, StartRow: TableEnd(TableID),
		Dir: TabletDir(TableID, MetaTabletID), State: datapb.TabletState_TABLET_STATE_NORMAL}
}

// TabletDir is a tablet's directory in the file system.
func TabletDir(table, tablet uint64) string {
	return fmt.Sprintf("tables/%d/tablets/%d", table, tablet)
}

// CellTimestamp is the timestamp of every METADATA cell. The family keeps
// one version and every writer (master, splitting servers) uses the same
// timestamp, so the write with the highest sequence number wins: server
// clocks, which differ between the servers a METADATA tablet moves across,
// never decide which location is current.
const CellTimestamp int64 = 0
