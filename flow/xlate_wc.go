package flow

// finishMask turns the bits a translation of the packet k consulted into
// its megaflow mask, as Open vSwitch's translation finishes its wildcards
// (xlate_wc_finish):
//   - metadata, registers and conj_id are pipeline state, zero on every
//     arriving packet: they are never in the mask;
//   - ICMP type and code are 8-bit fields that live in the 16-bit tp_src
//     and tp_dst: only their low 8 bits are kept (the high bits of an
//     ICMP packet's are always zero, and nw_proto is in the mask whenever
//     they are, so the megaflow holds only ICMP packets);
//   - a later fragment has no transport header, and its tp_src and tp_dst
//     are zero: the ports are not kept when the fragment bits are;
//   - a megaflow that consults any bit of a VLAN tag's TCI also consults
//     its present (CFI) bit, so that it never holds tagged and untagged
//     packets at once.
func finishMask(mask *Key, k *Key) {
	for i := range mask.VLANs {
		if mask.VLANs[i].TCI != 0 {
			mask.VLANs[i].TCI |= VLANPresent
		}
	}
	mask.Metadata = 0
	mask.Regs = [NumRegs]uint32{}
	mask.ConjID = 0
	if mask.DlType == 0xffff && mask.NwProto == 0xff &&
		(k.DlType == EthTypeIPv4 && k.NwProto == IPProtoICMP || k.DlType == EthTypeIPv6 && k.NwProto == IPProtoICMPv6) {
		mask.TpSrc &= 0xff
		mask.TpDst &= 0xff
	}
	if k.NwFrag&FragLater != 0 && mask.NwFrag&FragLater != 0 {
		mask.TpSrc, mask.TpDst = 0, 0
	}
}
