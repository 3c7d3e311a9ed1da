package tunnel

import (
	"encoding/binary"
	"errors"

	"github.com/ovsxdp/ovsxdp/flow"
)

// ErrGeneveOption: a Geneve option that the bridge's TLV map maps with
// another length, or an unmapped option whose type has the critical bit:
// Open vSwitch drops such a packet rather than ignore what it must
// understand.
var ErrGeneveOption = errors.New("geneve option not understood")

// MapOptions fills h.TunMeta and h.TunMetaPresent from the Geneve options
// of a decapsulated packet (Options, already validated by Decode), as the
// TLV map m maps them; unmapped options that are not critical are ignored,
// as in Open vSwitch. It returns ErrGeneveOption, unwrapped, for an option
// the packet must be dropped for. It does not allocate.
func (h *Header) MapOptions(m *flow.TLVMap) error {
	h.TunMeta, h.TunMetaPresent = [flow.TunMetaSpace]byte{}, 0
	opts := h.Options
	for len(opts) >= geneveOptHdrLen {
		class, typ := binary.BigEndian.Uint16(opts), opts[2]
		n := int(opts[3]&0x1f) * 4
		if geneveOptHdrLen+n > len(opts) {
			return ErrGeneveOptLen
		}
		body := opts[geneveOptHdrLen : geneveOptHdrLen+n]
		opts = opts[geneveOptHdrLen+n:]
		i, off, ln, ok := m.Find(class, typ)
		switch {
		case ok && ln != n:
			return ErrGeneveOption
		case ok:
			flow.SetTunMeta(&h.TunMeta, &h.TunMetaPresent, i, off, n, body)
		case typ&GeneveOptCritical != 0:
			return ErrGeneveOption
		}
	}
	return nil
}

// AppendMetaOptions appends to dst the Geneve options of the tun_metadata
// fields that k carries, in the order of their indexes, as the TLV map m
// maps them (a field m no longer maps is left out), and reports whether
// one of them is critical (the Geneve header's C bit). This is what
// Open vSwitch sends for the fields a flow set or the packet came with.
func AppendMetaOptions(dst []byte, m *flow.TLVMap, k *flow.Key) ([]byte, bool) {
	critical := false
	for i := range flow.NumTunMeta {
		mp, _, ok := m.Lookup(i)
		if !ok {
			continue
		}
		val := k.TunMetaValue(i)
		if len(val) != int(mp.Len) {
			continue
		}
		dst = binary.BigEndian.AppendUint16(dst, mp.Class)
		dst = append(dst, mp.Type, mp.Len/4)
		dst = append(dst, val...)
		critical = critical || mp.Type&GeneveOptCritical != 0
	}
	return dst, critical
}
