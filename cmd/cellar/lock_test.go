package main

import (
	"reflect"
	"testing"

	"cellar/lock"
)

func TestParseBootstrap(t *testing.T) {
	good := "a=127.0.0.1:1=127.0.0.1:2, b=h:3=h:4"
	got, err := parseBootstrap(good)
	want := []lock.Peer{{ID: "a", RaftAddr: "127.0.0.1:1", GRPCAddr: "127.0.0.1:2"}, {ID: "b", RaftAddr: "h:3", GRPCAddr: "h:4"}}
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("parseBootstrap(%q) = %v, %v, want %v", good, got, err, want)
	}
	if got, err := parseBootstrap(""); err != nil || got != nil {
		t.Fatalf("parseBootstrap(\"\") = %v, %v", got, err)
	}
	for _, bad := range []string{"a=1", "a=1=2=3", "=1=2", "a=1=2,,", "a==2"} {
		if _, err := parseBootstrap(bad); err == nil {
			t.Errorf("parseBootstrap(%q) succeeded", bad)
		}
	}
}
