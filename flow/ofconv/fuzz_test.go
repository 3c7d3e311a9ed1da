package ofconv

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/ovsxdp/ovsxdp/flow"
	"github.com/ovsxdp/ovsxdp/flow/openflow"
)

// FuzzFlowFromMod decodes flow mods and converts them to flows: whatever
// the bytes, conversion never panics, and a flow it accepts encodes back
// as a flow stats entry in every version that can carry it (connection
// tracking included).
// The seeds are the flow mods ovs-ofctl sent in the codec's captures.
func FuzzFlowFromMod(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("..", "openflow", "testdata", "captured", "*-add-flow-*.bin"))
	for _, name := range files {
		if b, err := os.ReadFile(name); err == nil {
			f.Add(b)
		}
	}
	// A flow mod that matches tun_metadata fields, which the fuzzed
	// bridge maps.
	p := tlvParser(f)
	if m, err := p.ParseMatch("tun_metadata0=0x1200/0xff00,tun_metadata5=0x5"); err == nil {
		if b, err := openflow.Encode(openflow.Version13, 1, &openflow.FlowMod{Command: openflow.FlowAdd, Match: FieldsFromMatch(m, false), Priority: 1}); err == nil {
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		h, m, err := openflow.Decode(raw)
		if err != nil {
			return
		}
		fm, ok := m.(*openflow.FlowMod)
		if !ok {
			return
		}
		mod, err := FlowFromMod(p, h.Version, fm)
		if err != nil || mod.Cmd != flow.CmdAdd {
			return
		}
		tb := flow.NewTable()
		if err := tb.Add(mod.Flow); err != nil {
			return
		}
		for _, r := range tb.Dump(nil) {
			for _, v := range []uint8{openflow.Version10, openflow.Version13, openflow.Version15} {
				e, err := FlowStats(v, v == openflow.Version10, r, time.Now())
				if err == nil {
					_, err = openflow.Encode(v, 1, &openflow.FlowStatsReply{Nicira: v == openflow.Version10, Entries: []openflow.FlowStats{e}})
				}
				if err != nil && !errors.Is(err, openflow.ErrUnencodable) {
					t.Fatalf("flow %s from %x: version 0x%02x: %v", flow.FormatFlow(mod.Flow), raw, v, err)
				}
			}
		}
	})
}
