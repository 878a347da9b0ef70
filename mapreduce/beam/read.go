package cellarbeam

import (
	"bytes"
	"context"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"sync"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/core/sdf"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/register"

	"cellar/client"
	"cellar/mapreduce"
)

func init() {
	register.DoFn4x1[context.Context, *sdf.LockRTracker, ReadSpec, func(Row), error]((*readFn)(nil))
	register.Emitter1[Row]()
	beam.RegisterType(reflectTypeOf[Row]())
	beam.RegisterType(reflectTypeOf[Cell]())
	beam.RegisterType(reflectTypeOf[KeyRange]())
	beam.RegisterType(reflectTypeOf[ReadSpec]())
}

// Row is one table row as a pipeline element: its key and its cells in
// the table's order (family, qualifier, newest first).
type Row struct {
	Key   []byte
	Cells []Cell
}

// Cell is one cell version. On write, Timestamp -1 (client.ServerTime)
// means the pipeline's write timestamp (WriteConfig.Timestamp).
type Cell struct {
	Family    string
	Qualifier []byte
	Timestamp int64
	Value     []byte
}

// ReadConfig says what Read scans.
type ReadConfig struct {
	// Cluster are the lock-service addresses (required).
	Cluster []string
	// Table to read (required).
	Table string
	// Start and End bound the rows to [Start, End); End "" is unbounded.
	Start, End string
	// Families, if set, restricts the scan to these families.
	Families []string
	// MaxVersions, if positive, keeps the newest MaxVersions versions of
	// each column.
	MaxVersions int
}

// ReadSpec is the source's input element: what one Read scans.
type ReadSpec struct {
	Table       string
	Start, End  []byte
	Families    []string
	MaxVersions int
}

// Read returns a PCollection of Row: the rows of cfg.Table in
// [Start, End). It is a splittable DoFn whose initial restriction is split
// into one KeyRange per tablet (boundaries from the cluster's table
// description when the pipeline runs); a runner may split a tablet's range
// further while it is read (KeyRangeTracker.TrySplit).
func Read(s beam.Scope, cfg ReadConfig) beam.PCollection {
	s = s.Scope("cellar.Read")
	spec := ReadSpec{Table: cfg.Table, Start: []byte(cfg.Start), End: []byte(cfg.End), Families: cfg.Families, MaxVersions: cfg.MaxVersions}
	imp := beam.Create(s, spec)
	return beam.ParDo(s, &readFn{Cluster: cfg.Cluster}, imp)
}

// clients shares one cellar client per cluster within a worker process:
// DoFn instances come and go per bundle, connections should not.
var clients struct {
	sync.Mutex
	m map[string]*client.Client
}

func clientFor(ctx context.Context, cluster []string) (*client.Client, error) {
	key := strings.Join(cluster, ",")
	clients.Lock()
	defer clients.Unlock()
	if c := clients.m[key]; c != nil {
		return c, nil
	}
	c, err := client.Dial(ctx, cluster)
	if err != nil {
		return nil, err
	}
	if clients.m == nil {
		clients.m = map[string]*client.Client{}
	}
	clients.m[key] = c
	return c, nil
}

// CloseClients closes the clients the pipeline's DoFns opened in this
// process (for tests and for programs that run several pipelines).
func CloseClients() {
	clients.Lock()
	defer clients.Unlock()
	for k, c := range clients.m {
		c.Close()
		delete(clients.m, k)
	}
}

// restrictionsRead counts the restrictions the source's ProcessElement
// was called with (one per tablet, plus any dynamic split's residuals).
var restrictionsRead = beam.NewCounter("cellar", "restrictions_read")

// readFn is the source: a splittable DoFn over KeyRange restrictions.
type readFn struct {
	Cluster []string
}

func (fn *readFn) CreateInitialRestriction(spec ReadSpec) KeyRange {
	return KeyRange{Start: spec.Start, End: spec.End}
}

// SplitRestriction cuts the range at the table's tablet boundaries. If the
// table cannot be described the range stays whole (ProcessElement then
// reports the error).
func (fn *readFn) SplitRestriction(spec ReadSpec, rest KeyRange) []KeyRange {
	ctx := context.Background()
	cl, err := clientFor(ctx, fn.Cluster)
	if err != nil {
		return []KeyRange{rest}
	}
	info, err := cl.Admin().TableInfo(ctx, spec.Table)
	if err != nil {
		return []KeyRange{rest}
	}
	var bounds [][]byte
	for _, t := range info.Tablets {
		if t.StartKey != "" && rest.contains([]byte(t.StartKey)) && !bytes.Equal([]byte(t.StartKey), rest.Start) {
			bounds = append(bounds, []byte(t.StartKey))
		}
	}
	slices.SortFunc(bounds, bytes.Compare)
	out := make([]KeyRange, 0, len(bounds)+1)
	start := rest.Start
	for _, b := range bounds {
		out = append(out, KeyRange{Start: start, End: b})
		start = b
	}
	return append(out, KeyRange{Start: start, End: rest.End})
}

func (fn *readFn) RestrictionSize(spec ReadSpec, rest KeyRange) float64 { return 1 }

func (fn *readFn) CreateTracker(rest KeyRange) *sdf.LockRTracker {
	return sdf.NewLockRTracker(NewKeyRangeTracker(rest))
}

// ProcessElement scans its restriction with client.ReadRows (which
// follows tablets across moves and splits without repeating a row),
// claiming each row before it emits it, and stops at the first row past a
// split point.
func (fn *readFn) ProcessElement(ctx context.Context, rt *sdf.LockRTracker, spec ReadSpec, emit func(Row)) error {
	cl, err := clientFor(ctx, fn.Cluster)
	if err != nil {
		return err
	}
	rest := rt.GetRestriction().(KeyRange)
	restrictionsRead.Inc(ctx, 1)
	var opts []client.ReadOption
	var fs []client.Filter
	if len(spec.Families) > 0 {
		q := make([]string, len(spec.Families))
		for i, f := range spec.Families {
			q[i] = regexp.QuoteMeta(f)
		}
		fs = append(fs, client.FamilyFilter(strings.Join(q, "|")))
	}
	if spec.MaxVersions > 0 {
		fs = append(fs, client.LatestNFilter(spec.MaxVersions))
	}
	if len(fs) > 0 {
		opts = append(opts, client.RowFilter(client.ChainFilters(fs...)))
	}
	stopped := false
	err = cl.Open(spec.Table).ReadRows(ctx, client.NewRange(string(rest.Start), string(rest.End)), func(r client.Row) bool {
		key := r.Key()
		if !rt.TryClaim(key) {
			stopped = true
			return false
		}
		row := Row{Key: []byte(key)}
		for _, c := range mapreduce.RowCells(r) {
			row.Cells = append(row.Cells, Cell{Family: c.Family, Qualifier: []byte(c.Qualifier), Timestamp: int64(c.Timestamp), Value: c.Value})
		}
		emit(row)
		return true
	}, opts...)
	if err != nil {
		return fmt.Errorf("cellar/mapreduce/beam: read table %q %v: %w", spec.Table, rest, err)
	}
	if !stopped {
		rt.TryClaim(EndOfRange{})
	}
	return rt.GetError()
}
