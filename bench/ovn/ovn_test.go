package main

import (
	"io"
	"log/slog"
	"reflect"
	"testing"
)

func TestParseRows(t *testing.T) {
	in := "bridge,kind,message,error,type,code,reason,count,distinct,example\n" +
		"br-int,received,OFPT_FLOW_MOD,,,,,12,,\n" +
		"br-int,refused,OFPT_FLOW_MOD,OFPBAC_BAD_TYPE,2,0,NXAST_CT,5,2,0604\n"
	got, err := parseRows(in)
	if err != nil {
		t.Fatal(err)
	}
	want := []row{
		{kind: "received", message: "OFPT_FLOW_MOD", count: 12},
		{kind: "refused", message: "OFPT_FLOW_MOD", errName: "OFPBAC_BAD_TYPE", typ: 2, code: 0, reason: "NXAST_CT", count: 5, distinct: 2, example: "0604"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("parseRows:\n%+v\nwant\n%+v", got, want)
	}
	if _, err := parseRows("h\nbr-int,refused,x\n"); err == nil {
		t.Error("a short row was taken")
	}
}

func TestDistinctLines(t *testing.T) {
	log := "2026-12-05T11:00:00.000Z|00001|vlog|INFO|opened log file\n" +
		"2026-12-05T11:00:01.000Z|00002|ofctrl|INFO|OpenFlow error: OFPT_ERROR (OF1.5) (xid=0x5): OFPBAC_BAD_TYPE\n" +
		"OFPT_BUNDLE_ADD_MESSAGE (OF1.5) (xid=0x5):\n" +
		"2026-12-05T11:00:02.000Z|00003|ofctrl|INFO|OpenFlow error: OFPT_ERROR (OF1.5) (xid=0x9): OFPBAC_BAD_TYPE\n" +
		"OFPT_BUNDLE_ADD_MESSAGE (OF1.5) (xid=0x9):\n" +
		"2026-12-05T11:00:03.000Z|00004|rconn|WARN|connection failed\n"
	got := distinctLines(log)
	want := []logCount{
		{"ofctrl|INFO|OpenFlow error: OFPT_ERROR (xid=…): OFPBAC_BAD_TYPE / OFPT_BUNDLE_ADD_MESSAGE (xid=…):", 2},
		{"rconn|WARN|connection failed", 1},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("distinctLines:\n%+v\nwant\n%+v", got, want)
	}
}

// TestRunner checks that Fatal ends the body, that the code after it does
// not run, and that cleanups run last first.
func TestRunner(t *testing.T) {
	r := newRunner(slog.New(slog.NewTextHandler(io.Discard, nil)))
	var order []string
	reached := false
	r.run(func(tb *runner) {
		tb.Cleanup(func() { order = append(order, "first") })
		tb.Cleanup(func() { order = append(order, "second") })
		tb.Fatalf("stop %d", 1)
		reached = true
	})
	if reached {
		t.Fatal("the body went on after Fatal")
	}
	if errs := r.errors(); !reflect.DeepEqual(errs, []string{"stop 1"}) || !r.Failed() {
		t.Fatalf("errors %q", errs)
	}
	r.cleanup()
	if !reflect.DeepEqual(order, []string{"second", "first"}) {
		t.Fatalf("cleanups ran in order %q", order)
	}
	// A panic in the body is a failure, not a crash.
	r2 := newRunner(slog.New(slog.NewTextHandler(io.Discard, nil)))
	r2.run(func(*runner) { panic("boom") })
	if !r2.Failed() {
		t.Fatal("a panic was not reported")
	}
}
