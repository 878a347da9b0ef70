package tablet

import (
	"bytes"
	"fmt"
	"sort"
	"strings"

	"cellar/internal/keys"
)

// model is the data model of one tablet written as plainly as possible: it
// keeps every entry ever applied and computes reads from scratch, sharing
// no code with the engine's merge. The model-based test compares the two.
type model struct {
	rows     map[string][]mEntry
	seq      uint64
	families []string // sorted
	gc       map[string]GCPolicy
}

type mEntry struct {
	fam, qual string
	ts        int64
	seq       uint64
	kind      keys.Kind
	value     []byte
	tr        keys.TimeRange
}

func newModel(fams []FamilyOptions) *model {
	m := &model{rows: map[string][]mEntry{}, gc: map[string]GCPolicy{}}
	for _, f := range fams {
		m.families = append(m.families, f.Name)
		m.gc[f.Name] = f.GC
	}
	sort.Strings(m.families)
	return m
}

func (m *model) apply(row string, muts []Mutation, serverTS int64) {
	for _, mu := range muts {
		ts := mu.ts
		if ts == ServerTime {
			ts = serverTS
		}
		add := func(e mEntry) {
			m.seq++
			e.seq = m.seq
			m.rows[row] = append(m.rows[row], e)
		}
		switch mu.op {
		case opSet:
			add(mEntry{fam: mu.family, qual: string(mu.qualifier), ts: ts, kind: keys.KindSet, value: append([]byte{}, mu.value...)})
		case opDeleteCell:
			add(mEntry{fam: mu.family, qual: string(mu.qualifier), ts: ts, kind: keys.KindDeleteCell})
		case opDeleteColumn:
			add(mEntry{fam: mu.family, qual: string(mu.qualifier), kind: keys.KindDeleteColumn, tr: mu.tr})
		case opDeleteFamily:
			add(mEntry{fam: mu.family, kind: keys.KindDeleteFamily})
		case opDeleteRow:
			for _, f := range m.families {
				add(mEntry{fam: f, kind: keys.KindDeleteFamily})
			}
		}
	}
}

type mVersion struct {
	fam, qual string
	ts        int64
	seq       uint64
	value     []byte
}

// visible returns the visible versions of a row per column, newest first,
// in cell order, before GC.
func (m *model) visible(row string) [][]mVersion {
	es := m.rows[row]
	type col struct{ fam, qual string }
	cols := map[col]bool{}
	for _, e := range es {
		if e.kind == keys.KindSet {
			cols[col{e.fam, e.qual}] = true
		}
	}
	var names []col
	for c := range cols {
		names = append(names, c)
	}
	sort.Slice(names, func(i, j int) bool {
		if names[i].fam != names[j].fam {
			return names[i].fam < names[j].fam
		}
		return names[i].qual < names[j].qual
	})
	var out [][]mVersion
	for _, c := range names {
		// The newest Set or DeleteCell per timestamp decides that version.
		newest := map[int64]mEntry{}
		for _, e := range es {
			if e.fam != c.fam || e.qual != c.qual || (e.kind != keys.KindSet && e.kind != keys.KindDeleteCell) {
				continue
			}
			if cur, ok := newest[e.ts]; !ok || e.seq > cur.seq {
				newest[e.ts] = e
			}
		}
		var vs []mVersion
		for ts, e := range newest {
			if e.kind != keys.KindSet || m.masked(es, e) {
				continue
			}
			vs = append(vs, mVersion{fam: c.fam, qual: c.qual, ts: ts, seq: e.seq, value: e.value})
		}
		sort.Slice(vs, func(i, j int) bool { return vs[i].ts > vs[j].ts })
		if len(vs) > 0 {
			out = append(out, vs)
		}
	}
	return out
}

func (m *model) masked(es []mEntry, c mEntry) bool {
	for _, e := range es {
		if e.fam != c.fam || e.seq <= c.seq {
			continue
		}
		if e.kind == keys.KindDeleteFamily {
			return true
		}
		if e.kind == keys.KindDeleteColumn && e.qual == c.qual && e.tr.Contains(c.ts) {
			return true
		}
	}
	return false
}

// read is ReadRow in the model.
func (m *model) read(row string, ro *ReadOptions, now int64) *Row {
	if ro == nil {
		ro = &ReadOptions{}
	}
	all := len(ro.Families) == 0 && len(ro.Columns) == 0
	selected := func(fam, qual string) bool {
		if all {
			return true
		}
		for _, f := range ro.Families {
			if f == fam {
				return true
			}
		}
		for _, c := range ro.Columns {
			if c.Family == fam && string(c.Qualifier) == qual {
				return true
			}
		}
		return false
	}
	var r *Row
	for _, vs := range m.visible(row) {
		n := 0
		for i, v := range vs {
			if m.gc[v.fam].Garbage(i, v.ts, now) || !selected(v.fam, v.qual) || !ro.TimeRange.Contains(v.ts) {
				continue
			}
			if ro.MaxVersions > 0 && n >= ro.MaxVersions {
				break
			}
			n++
			if r == nil {
				r = &Row{Key: []byte(row)}
			}
			r.Cells = append(r.Cells, Cell{Family: v.fam, Qualifier: []byte(v.qual), Timestamp: v.ts, Value: v.value})
		}
	}
	return r
}

// scan is Scan in the model.
func (m *model) scan(so *ScanOptions, now int64) []*Row {
	var rows []string
	for r := range m.rows {
		if (so.Start == nil || r >= string(so.Start)) && (so.End == nil || r < string(so.End)) {
			rows = append(rows, r)
		}
	}
	sort.Strings(rows)
	var out []*Row
	for _, r := range rows {
		if row := m.read(r, &so.Read, now); row != nil {
			out = append(out, row)
			if so.Limit > 0 && len(out) == so.Limit {
				break
			}
		}
	}
	return out
}

// compact is a major compaction in the model: only the visible versions the
// GC policy keeps at now survive, as plain sets; tombstones go.
func (m *model) compact(now int64) {
	for row := range m.rows {
		var keep []mEntry
		for _, vs := range m.visible(row) {
			for i, v := range vs {
				if !m.gc[v.fam].Garbage(i, v.ts, now) {
					keep = append(keep, mEntry{fam: v.fam, qual: v.qual, ts: v.ts, seq: v.seq, kind: keys.KindSet, value: v.value})
				}
			}
		}
		if keep == nil {
			delete(m.rows, row)
		} else {
			m.rows[row] = keep
		}
	}
}

// restrict keeps the rows in [start, end) (a split daughter).
func (m *model) restrict(start, end []byte) *model {
	c := &model{rows: map[string][]mEntry{}, seq: m.seq, families: m.families, gc: m.gc}
	for r, es := range m.rows {
		if (start == nil || r >= string(start)) && (end == nil || r < string(end)) {
			c.rows[r] = es
		}
	}
	return c
}

func rowsEqual(a, b *Row) bool {
	if (a == nil) != (b == nil) {
		return false
	}
	if a == nil {
		return true
	}
	if !bytes.Equal(a.Key, b.Key) || len(a.Cells) != len(b.Cells) {
		return false
	}
	for i := range a.Cells {
		x, y := a.Cells[i], b.Cells[i]
		if x.Family != y.Family || !bytes.Equal(x.Qualifier, y.Qualifier) || x.Timestamp != y.Timestamp || !bytes.Equal(x.Value, y.Value) {
			return false
		}
	}
	return true
}

func fmtRow(r *Row) string {
	if r == nil {
		return "<nil>"
	}
	var sb strings.Builder
	fmt.Fprintf(&sb, "%q{", r.Key)
	for i, c := range r.Cells {
		if i > 0 {
			sb.WriteString(" ")
		}
		fmt.Fprintf(&sb, "%s:%q@%d=%q", c.Family, c.Qualifier, c.Timestamp, c.Value)
	}
	sb.WriteString("}")
	return sb.String()
}
