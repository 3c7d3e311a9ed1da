package daemon

import (
	"testing"

	"github.com/ovsxdp/ovsxdp/flow/openflow"
	"github.com/ovsxdp/ovsxdp/vport/ethtool"
)

// TestPortDescBetween checks the port status sent before a change's own,
// for the changes TestPortDescMatchesOVS (test/) saw Open vSwitch 3.1
// report in two steps, and those it reports in one.
func TestPortDescBetween(t *testing.T) {
	const (
		down = openflow.PortConfigDown
		live = openflow.PortStateLive
		ldn  = openflow.PortStateDown
	)
	port := func(config, state uint32) openflow.Port {
		return openflow.Port{PortNo: 1, Name: "p", Config: config, State: state}
	}
	tests := []struct {
		name      string
		inOld     openflow.Port
		inNow     openflow.Port
		inPortMod bool
		wantMid   bool
		want      openflow.Port
	}{
		{"link lost", port(0, live), port(0, ldn), false, true, port(0, 0)},
		{"link back", port(0, ldn), port(0, live), false, false, openflow.Port{}},
		{"port mod down", port(0, live), port(down, ldn), true, true, port(down, 0)},
		{"port mod up", port(down, ldn), port(0, live), true, true, port(0, ldn)},
		{"device down", port(0, live), port(down, ldn), false, true, port(0, 0)},
		{"device up", port(down, ldn), port(0, live), false, false, openflow.Port{}},
		{"address", port(0, live), openflow.Port{PortNo: 1, Name: "p", State: live, HWAddr: [6]byte{2}}, false, false, openflow.Port{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := portDescBetween(tt.inOld, tt.inNow, tt.inPortMod)
			if ok != tt.wantMid || ok && portDescChanged(got, tt.want) {
				t.Errorf("portDescBetween = %+v, %v; want %+v, %v", got, ok, tt.want, tt.wantMid)
			}
		})
	}
}

// TestPortFeatures turns link settings into OpenFlow features as
// ovs-vswitchd does: a TAP device's (10 Gb/s, full duplex, twisted pair,
// no link modes) is 10GB-FD COPPER at 10,000,000 kb/s, with no maximum.
func TestPortFeatures(t *testing.T) {
	tests := []struct {
		name                       string
		in                         ethtool.Settings
		wantCurr, wantAdv, wantSup uint32
		wantKbps, wantMaxKbps      uint32
	}{
		{"tap", ethtool.Settings{Speed: 10000, Duplex: ethtool.DuplexFull, Port: ethtool.PortTP},
			openflow.PortFeature10GBFD | openflow.PortFeatureCopper, 0, 0, 10000000, 0},
		{"1G half autoneg", ethtool.Settings{Speed: 1000, Duplex: ethtool.DuplexHalf, Port: ethtool.PortFibre, Autoneg: true,
			Supported: 1<<5 | 1<<12 | 1<<6, Advertising: 1 << 5},
			openflow.PortFeature1GBHD | openflow.PortFeatureFiber | openflow.PortFeatureAutoneg,
			openflow.PortFeature1GBFD, openflow.PortFeature1GBFD | openflow.PortFeature10GBFD | openflow.PortFeatureAutoneg, 1000000, 10000000},
		{"unknown speed", ethtool.Settings{Speed: ethtool.SpeedUnknown, Duplex: 0xff, Port: 0xff}, 0, 0, 0, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			curr, adv, sup := portFeatures(tt.in)
			if curr != tt.wantCurr || adv != tt.wantAdv || sup != tt.wantSup {
				t.Errorf("features %#x %#x %#x, want %#x %#x %#x", curr, adv, sup, tt.wantCurr, tt.wantAdv, tt.wantSup)
			}
			if k, m := featuresKbps(curr), featuresKbps(sup); k != tt.wantKbps || m != tt.wantMaxKbps {
				t.Errorf("speeds %d, %d kb/s, want %d, %d", k, m, tt.wantKbps, tt.wantMaxKbps)
			}
		})
	}
}
