package ofconv

import (
	"errors"
	"fmt"
	"testing"

	"github.com/ovsxdp/ovsxdp/flow"
	"github.com/ovsxdp/ovsxdp/flow/openflow"
)

// groupTexts are groups in ovs-ofctl syntax: every type, liveness,
// weights, bucket ids and selection methods with masked fields.
var groupTexts = []string{
	"group_id=1,type=all,bucket=bucket_id:0,actions=output:2,bucket=bucket_id:1,actions=output:3",
	"group_id=2,type=indirect,bucket=actions=mod_dl_src:00:00:00:00:bb:01,output:4",
	"group_id=3,type=fast_failover,bucket=watch_port:2,actions=output:2,bucket=watch_port:3,watch_group:9,actions=output:3",
	"group_id=4,type=select,selection_method=hash,fields(ip_src,ip_dst),bucket=bucket_id:0,weight:1,actions=output:2,bucket=bucket_id:7,weight:2,actions=output:4",
	"group_id=8,type=select,selection_method=hash,selection_method_param=7,fields(ip_dst=255.255.255.0,nw_proto,eth_src=ff:ff:ff:00:00:00,tcp_dst=0xff00),bucket=weight:0,actions=output:1,bucket=weight:3,actions=output:4",
	"group_id=6,type=all,bucket=actions=group:2,bucket=actions=set_field:10.9.9.9->ip_dst,output:3",
	"group_id=11,type=indirect,bucket=actions=set_field:7->ip_dscp,set_field:10.7.7.7->ip_src,resubmit(,2)",
	"group_id=12,type=all",
}

// groupRoundTrip sends g through a group desc reply of version v and
// converts the entry back as an add group mod.
func groupRoundTrip(v uint8, g *flow.Group) (*flow.Group, error) {
	d, err := GroupDesc(v, g)
	if err != nil {
		return nil, err
	}
	b, err := openflow.Encode(v, 1, &openflow.GroupDescReply{Entries: []openflow.GroupDesc{d}})
	if err != nil {
		return nil, err
	}
	_, m, err := openflow.Decode(b)
	if err != nil {
		return nil, err
	}
	got := m.(*openflow.GroupDescReply).Entries[0]
	return GroupFromMod(nil, v, &openflow.GroupMod{Command: openflow.GroupAdd, Type: got.Type, GroupID: got.GroupID, Buckets: got.Buckets, Props: got.Props})
}

func TestGroupRoundTrip(t *testing.T) {
	for _, v := range []uint8{openflow.Version13, openflow.Version15} {
		dialect := flow.GroupOF13
		if v == openflow.Version15 {
			dialect = flow.GroupOF15
		}
		for _, s := range groupTexts {
			g, err := flow.ParseGroup(s, flow.GroupCmdAdd)
			if err != nil {
				t.Fatalf("%s: %v", s, err)
			}
			back, err := groupRoundTrip(v, g)
			if err != nil {
				t.Errorf("v%d %s: %v", v, s, err)
				continue
			}
			if a, b := flow.FormatGroup(back, dialect), flow.FormatGroup(g, dialect); a != b {
				t.Errorf("v%d: %s\ncame back as %s", v, b, a)
			}
			if v == openflow.Version15 {
				// 1.5 carries everything: the groups are the same.
				if a, b := flow.FormatGroup(back, flow.GroupOF15), flow.FormatGroup(g, flow.GroupOF15); a != b {
					t.Errorf("v%d (1.5 text): %s\ncame back as %s", v, b, a)
				}
			}
		}
	}
}

func TestGroupModErrors(t *testing.T) {
	one := []openflow.Bucket{{Actions: []openflow.Action{&openflow.ActOutput{Port: 1}}, HasWeight: true, HasWatchPort: true, HasWatchGroup: true,
		WatchPort: openflow.PortAny, WatchGroup: openflow.GroupAny}}
	for _, tc := range []struct {
		v    uint8
		gm   openflow.GroupMod
		typ  uint16
		code uint16
	}{
		{openflow.Version13, openflow.GroupMod{GroupID: flow.GroupMax + 1, Buckets: one}, openflow.ErrTypeGroupModFailed, CodeInvalidGroup},
		{openflow.Version13, openflow.GroupMod{GroupID: 1, Type: 9, Buckets: one}, openflow.ErrTypeGroupModFailed, CodeGroupBadType},
		{openflow.Version15, openflow.GroupMod{GroupID: 1, Buckets: []openflow.Bucket{{BucketID: 0xffffffff}}}, openflow.ErrTypeGroupModFailed, CodeGroupBadBucket},
		{openflow.Version15, openflow.GroupMod{GroupID: 1, Props: []openflow.Property{{Type: 0xffff, Data: make([]byte, 8)}}}, 14, 0},
	} {
		_, err := GroupFromMod(nil, tc.v, &tc.gm)
		var oe *openflow.Error
		if !errors.As(err, &oe) || oe.Type != tc.typ || oe.Code != tc.code {
			t.Errorf("%+v: %v, want error type %d code %d", tc.gm, err, tc.typ, tc.code)
		}
	}
	for _, tc := range []struct {
		err       error
		typ, code uint16
	}{
		{fmt.Errorf("x: %w", flow.ErrGroupExists), openflow.ErrTypeGroupModFailed, CodeGroupExists},
		{fmt.Errorf("x: %w", flow.ErrUnknownGroup), openflow.ErrTypeGroupModFailed, CodeUnknownGroup},
		{&flow.AddError{Err: fmt.Errorf("x: %w", flow.ErrBadOutGroup)}, openflow.ErrTypeBadAction, codeBadOutGroup},
	} {
		var oe *openflow.Error
		if err := TableError(tc.err); !errors.As(err, &oe) || oe.Type != tc.typ || oe.Code != tc.code {
			t.Errorf("TableError(%v) = %v", tc.err, err)
		}
	}
	if err := TableError(nil); err != nil {
		t.Errorf("TableError(nil) = %v", err)
	}
}
