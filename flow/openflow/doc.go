// Package openflow is the OpenFlow wire codec of ovsxdp: framing, version
// negotiation, and decoding and encoding of the messages, matches, actions
// and instructions that ovs-ofctl and OpenFlow controllers exchange with a
// switch, for OpenFlow 1.0 (0x01), 1.3 (0x04), 1.4 (0x05) and 1.5 (0x06),
// with the Nicira extensions Open vSwitch uses.
//
// Covered:
//   - framing (Reader: bounded, one buffer, clear errors on bad lengths) and
//     hello version negotiation with version bitmaps (Negotiate);
//   - hello, error, echo, features, get/set config, barrier, packet in/out,
//     port status, port mod, flow mod (ofp_match in 1.0, OXM and
//     instructions in 1.1+), flow removed, group mod, role request/reply,
//     set async and get async request/reply;
//   - multipart/stats: desc, flow, aggregate, table, table features (the
//     properties as generic TLVs), port, port-desc, group, group-desc, flow
//     monitor (requests in the Nicira, ONF 1.3 and 1.4+ formats, updates in
//     the Nicira and 1.4+ formats); Nicira NXST_FLOW and NXST_AGGREGATE;
//   - Nicira messages NXT_FLOW_MOD, NXT_SET_FLOW_FORMAT, NXT_FLOW_MOD_TABLE_ID,
//     NXT_SET_PACKET_IN_FORMAT, NXT_SET_CONTROLLER_ID, NXT_ROLE_REQUEST/REPLY,
//     NXT_PACKET_IN, NXT_PACKET_IN2, NXT_FLOW_REMOVED,
//     NXT_SET_ASYNC_CONFIG(2), flow monitor cancel/paused/resumed;
//   - OXM and NXM match TLVs (Field), named with Open vSwitch's field names;
//   - actions of 1.0 and 1.1+ and the Nicira actions resubmit, reg_load,
//     reg_move, reg_load2, output_reg(2), note, dec_ttl, exit, controller,
//     controller2, conjunction, learn, clone, set_tunnel, ct (with its
//     nested nat and exec actions), nat, ct_clear; other known Nicira
//     actions (bundle, learn2, ...) are kept as ActRaw.
//
// Not covered: the connection and its state machine, semantic validation
// (prerequisites, maskability, port ranges: the pipeline's job), OXM
// tunnel-metadata fields, ONF 1.3 flow updates, table mod, meters,
// queues, bundles, and OpenFlow 1.1/1.2 (which ovs-ofctl does not need).
// Such messages decode to *Unknown, *Experimenter or *MultipartRaw so the
// caller can answer with the proper error; unknown actions, instructions
// and malformed matches are errors carrying the OpenFlow error type and
// code (*Error). Decoding never panics and never allocates more than the
// message's own size suggests.
//
// Decode(Encode(m)) gives m back, and Encode(Decode(b)) gives b back for
// messages in canonical form (zero padding, as Open vSwitch sends them).
package openflow
