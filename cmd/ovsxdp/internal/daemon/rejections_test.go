package daemon

import (
	"bufio"
	"bytes"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ovsxdp/ovsxdp/flow/openflow"
)

// TestOFRejectionsReported checks that an error reply the OpenFlow channel
// sends is counted in ofproto/rejections and in the metrics, by message,
// error and refused action.
func TestOFRejectionsReported(t *testing.T) {
	dir := t.TempDir()
	d, err := New(Config{RunDir: filepath.Join(dir, "run"), NoLocalPort: true, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	run(t, d, "add-br", "br0")
	cl := dialOF(t, filepath.Join(dir, "run", "br0.mgmt"))
	sample := &openflow.ActRaw{Type: 0xffff, Experimenter: openflow.NiciraExperimenter, Subtype: 29, Data: make([]byte, 14)}
	cl.send(&openflow.FlowMod{Command: openflow.FlowAdd, BufferID: openflow.NoBuffer, OutPort: openflow.PortAny, OutGroup: 0xffffffff,
		Instructions: []openflow.Instruction{{Type: openflow.InstApplyActions, Actions: []openflow.Action{sample}}}})
	if m, ok := cl.recv().(*openflow.ErrorMsg); !ok || m.Type != openflow.ErrTypeBadAction {
		t.Fatalf("flow mod with sample answered with %#v, want OFPET_BAD_ACTION", m)
	}
	out := run(t, d, "ofproto/rejections", "br0")
	for _, want := range []string{
		"received: 2 messages, refused: 1\n",
		"OFPT_FLOW_MOD                    received 1, refused 1\n",
		"       1        1  OFPT_FLOW_MOD                OFPBAC_BAD_TYPE            NXAST_SAMPLE\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("ofproto/rejections lacks %q:\n%s", want, out)
		}
	}
	csvOut, err := runFlags(d, "ofproto/rejections", map[string]string{"csv": "true"}, "br0")
	if err != nil {
		t.Fatal(err)
	}
	if want := "br0,refused,OFPT_FLOW_MOD,OFPBAC_BAD_TYPE,2,0,NXAST_SAMPLE,1,1,040e0058"; !strings.Contains(csvOut, want) ||
		!strings.HasPrefix(csvOut, "bridge,kind,message,error,type,code,reason,count,distinct,example\n") {
		t.Errorf("ofproto/rejections --csv lacks %q:\n%s", want, csvOut)
	}
	var buf bytes.Buffer
	w := bufio.NewWriter(&buf)
	d.writeMetrics(w)
	w.Flush()
	for _, want := range []string{
		`ovsxdp_openflow_received_total{bridge="br0",msg="OFPT_FLOW_MOD"} 1`,
		`ovsxdp_openflow_errors_total{bridge="br0",msg="OFPT_FLOW_MOD",error="OFPBAC_BAD_TYPE",reason="NXAST_SAMPLE"} 1`,
	} {
		if !strings.Contains(buf.String(), want+"\n") {
			t.Errorf("metrics lack %s", want)
		}
	}
}
