package ofconn

import (
	"bytes"
	"testing"

	"github.com/ovsxdp/ovsxdp/flow/openflow"
)

// TestBadSetErrors10: OFPBAC_BAD_SET_TYPE, _LEN and _ARGUMENT (a ct
// action's exec or nat refused) go to OpenFlow 1.0 peers as Open vSwitch's
// Nicira errors (1,523) to (1,525), which ovs-ofctl names as such.
func TestBadSetErrors10(t *testing.T) {
	for code, want := range map[uint16][]byte{
		13: {0, 0, 0x23, 0x20, 0, 1, 0x02, 0x0b},
		14: {0, 0, 0x23, 0x20, 0, 1, 0x02, 0x0c},
		15: {0, 0, 0x23, 0x20, 0, 1, 0x02, 0x0d},
	} {
		em := errorMsg(openflow.Version10, openflow.ErrTypeBadAction, code, []byte{9})
		if em.Type != nxetVendor || em.Code != nxvcVendorError || !bytes.Equal(em.Data, append(want, 9)) {
			t.Errorf("code %d: %+v, want vendor error with %x", code, em, want)
		}
		if em := errorMsg(openflow.Version13, openflow.ErrTypeBadAction, code, nil); em.Type != openflow.ErrTypeBadAction || em.Code != code {
			t.Errorf("OpenFlow 1.3, code %d: %+v", code, em)
		}
	}
}
