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

// TestBadPortError10: OFPBRC_BAD_PORT (a packet out from a reserved port
// that cannot have sent it) goes to OpenFlow 1.0 peers as Open vSwitch's
// Nicira error (1,514).
func TestBadPortError10(t *testing.T) {
	want := []byte{0, 0, 0x23, 0x20, 0, 1, 0x02, 0x02, 9}
	em := errorMsg(openflow.Version10, openflow.ErrTypeBadRequest, codeBadReqBadPort, []byte{9})
	if em.Type != nxetVendor || em.Code != nxvcVendorError || !bytes.Equal(em.Data, want) {
		t.Errorf("%+v, want vendor error with %x", em, want)
	}
	if em := errorMsg(openflow.Version13, openflow.ErrTypeBadRequest, codeBadReqBadPort, nil); em.Type != openflow.ErrTypeBadRequest || em.Code != codeBadReqBadPort {
		t.Errorf("OpenFlow 1.3: %+v", em)
	}
}

// TestErrorDataFits checks that an error echoes the whole request, and
// that the echo of the longest request is cut for the error to fit the
// longest message, as Open vSwitch cuts it: 65,523 bytes after a plain
// error's header, and after an OpenFlow 1.0 vendor error's 8 more.
func TestErrorDataFits(t *testing.T) {
	tests := []struct {
		name     string
		v        uint8
		typ      uint16
		code     uint16
		reqLen   int
		wantData int
	}{
		{"short request, whole", openflow.Version13, openflow.ErrTypeBadRequest, 1, 200, 200},
		{"longest request, cut", openflow.Version13, openflow.ErrTypeBadRequest, 1, openflow.MaxMessageLen, openflow.MaxMessageLen - 12},
		{"longest request, 1.0 vendor error", openflow.Version10, 2, 9, openflow.MaxMessageLen, openflow.MaxMessageLen - 12},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := make([]byte, tt.reqLen)
			for i := range req {
				req[i] = byte(i)
			}
			b, err := encodeError(tt.v, 1, errorMsg(tt.v, tt.typ, tt.code, req))
			if err != nil {
				t.Fatal(err)
			}
			_, m, err := openflow.Decode(b)
			if err != nil {
				t.Fatal(err)
			}
			e := m.(*openflow.ErrorMsg)
			if len(b) > openflow.MaxMessageLen || len(e.Data) != tt.wantData {
				t.Fatalf("error of %d bytes with %d bytes of data, want %d", len(b), len(e.Data), tt.wantData)
			}
			echo := e.Data[len(e.Data)-min(len(e.Data), len(req)):]
			if tt.v == openflow.Version10 {
				echo = e.Data[8:] // after the vendor, type and code
			}
			if !bytes.Equal(echo, req[:len(echo)]) {
				t.Errorf("the data is not the start of the request")
			}
		})
	}
}
