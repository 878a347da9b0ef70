package client

import (
	"errors"
	"slices"
	"testing"
	"time"
)

// The admin client finds the master through /cellar/master; a standby's
// NOT_MASTER makes it re-read the node and retry.
func TestAdminFollowsActiveMaster(t *testing.T) {
	e := newTestEnv(t, 1)
	ctx := testCtx(t)
	standby, active := startFakeMaster(t), startFakeMaster(t)
	standby.notMaster = true
	standby.onCall = func(string) { e.setLock(masterNode, []byte(active.addr)) }
	e.setLock(masterNode, []byte(standby.addr))
	a := e.client.Admin()
	fams := map[string]GCPolicy{"cf": MaxVersionsPolicy(3), "meta": UnionPolicy(MaxVersionsPolicy(1), MaxAgePolicy(time.Hour))}
	if err := a.CreateTable(ctx, "t", fams, "m"); err != nil {
		t.Fatalf("CreateTable: %v", err)
	}
	if err := a.CreateTable(ctx, "t", fams); !errors.Is(err, ErrTableExists) {
		t.Fatalf("CreateTable again = %v, want ErrTableExists", err)
	}
	info, err := a.TableInfo(ctx, "t")
	if err != nil {
		t.Fatal(err)
	}
	if info.ID != 100 || len(info.Tablets) != 2 || info.Tablets[0].EndKey != "m" || len(info.Families) != 2 ||
		info.Families[0].Name != "cf" || info.Families[0].GCPolicy.String() != "maxversions=3" ||
		info.Families[1].GCPolicy.String() != "maxversions=1 || maxage=1h" {
		t.Fatalf("TableInfo = %+v", info)
	}
	if _, err := a.TableInfo(ctx, "nope"); !errors.Is(err, ErrTableNotFound) {
		t.Fatalf("TableInfo(missing) = %v", err)
	}
	if err := a.CreateColumnFamily(ctx, "t", "cf", nil); !errors.Is(err, ErrFamilyExists) {
		t.Fatalf("CreateColumnFamily(existing) = %v", err)
	}
	if err := a.SetGCPolicy(ctx, "t", "cf", MaxAgePolicy(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if err := a.DeleteColumnFamily(ctx, "t", "meta"); err != nil {
		t.Fatal(err)
	}
	info, _ = a.TableInfo(ctx, "t")
	if len(info.Families) != 1 || info.Families[0].GCPolicy.String() != "maxage=1m" {
		t.Fatalf("families after changes = %+v", info.Families)
	}
	names, err := a.Tables(ctx)
	if err != nil || !slices.Equal(names, []string{"t"}) {
		t.Fatalf("Tables = %v, %v", names, err)
	}
	st, err := a.ClusterStatus(ctx)
	if err != nil || st.MasterAddr != active.addr || len(st.Servers) != 1 || st.Servers[0].Tablets != 3 {
		t.Fatalf("ClusterStatus = %+v, %v", st, err)
	}
}
