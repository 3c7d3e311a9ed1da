package flow

import "strconv"

// This file is the translation of group:G, as Open vSwitch's: an all or
// indirect group runs each bucket, a select group the bucket a hash of the
// packet picks, a fast_failover group its first live bucket. A bucket's
// actions are an OpenFlow action set: they run in the set's order, and
// they run on a copy of the packet's flow (the flow afterwards is as
// before the bucket).

// group runs group:id and reports whether the action list goes on: a
// group that does not exist stops it, as in Open vSwitch.
//
// Besides Open vSwitch's limits (depth, resubmits), one packet may run at
// most MaxResubmits group actions: all groups whose buckets name further
// groups multiply, and a chain of them 64 deep would otherwise run 2^64
// buckets without producing an action.
func (x *xlate) group(id uint32) bool {
	switch {
	case x.depth >= MaxResubmitDepth:
		x.fail(VerdictResubmitDepth, "over max translation depth "+strconv.Itoa(MaxResubmitDepth))
		return false
	case x.resubmits >= MaxResubmits:
		x.fail(VerdictResubmitLimit, "over "+strconv.Itoa(MaxResubmits)+" resubmit actions")
		return false
	case x.groups >= MaxResubmits:
		x.fail(VerdictResubmitLimit, "over "+strconv.Itoa(MaxResubmits)+" group actions")
		return false
	}
	x.groups++
	g := x.s.ofGroups[id]
	if g == nil {
		x.report(TraceWarn, "output to nonexistent group "+strconv.FormatUint(uint64(id), 10))
		return false
	}
	switch g.Type {
	case GroupAll, GroupIndirect:
		for i := range g.Buckets {
			x.bucket(&g.Buckets[i])
		}
		x.tr.Groups = append(x.tr.Groups, GroupHit{Group: g, Bucket: -1})
		return true
	case GroupSelect:
		if g.hashMap != nil {
			x.dpHashSelect(g)
			break
		}
		x.runChosen(g, x.pickSelect(g))
	case GroupFastFailover:
		x.runChosen(g, x.firstLive(g, 0))
	}
	return true
}

// runChosen runs bucket i of g (none when i < 0).
func (x *xlate) runChosen(g *InstalledGroup, i int) {
	if i < 0 {
		x.report(TraceDetail, "no live bucket")
		return
	}
	x.report(TraceDetail, "using bucket "+strconv.FormatUint(uint64(g.Buckets[i].ID), 10))
	x.bucket(&g.Buckets[i])
	x.tr.Groups = append(x.tr.Groups, GroupHit{Group: g, Bucket: i})
}

// bucket runs a bucket's action set on a copy of the flow.
func (x *xlate) bucket(b *Bucket) {
	var node *TraceNode
	if x.trace != nil {
		node = x.report(TraceTable, "bucket "+strconv.FormatUint(uint64(b.ID), 10))
	}
	oldTrace := x.trace
	if node != nil {
		x.trace = &node.Subs
	}
	var buf [16]Action
	acts := actionSet(buf[:0], b.Actions)
	saved := x.flow
	x.depth++
	x.inBucket++
	x.run(acts)
	x.inBucket--
	x.depth--
	x.flow = saved
	x.exit = false
	x.trace = oldTrace
}

// actionSet returns the actions of an OpenFlow action set in the order
// they run, as Open vSwitch orders them: the last pop_vlan, the last
// push_vlan, the last dec_ttl, every set field, load and move in order, and
// then the one final action (the last group, else the last output, else
// the last resubmit, else the last ct: a load balancer's buckets end in
// ct(commit,nat(dst=...),table=T)). Without a final action nothing runs;
// actions that an action set cannot hold are left out.
func actionSet(dst []Action, acts []Action) []Action {
	var pop, push, dec, final *Action
	finalRank := 0
	for i := range acts {
		a := &acts[i]
		switch a.Type {
		case ActPopVLAN:
			pop = a
		case ActPushVLAN:
			push = a
		case ActDecTTL:
			dec = a
		case ActCT, ActResubmit, ActOutput, ActController, ActGroup:
			rank := 1 // the later of these kinds wins: ct, resubmit, output (to CONTROLLER too), group
			switch a.Type {
			case ActCT:
				rank = 0
			case ActOutput, ActController:
				rank = 2
			case ActGroup:
				rank = 3
			}
			if rank >= finalRank {
				final, finalRank = a, rank
			}
		}
	}
	if final == nil {
		return dst
	}
	for _, a := range []*Action{pop, push, dec} {
		if a != nil {
			dst = append(dst, *a)
		}
	}
	for i := range acts {
		switch acts[i].Type {
		case ActSetField, ActSetVLANVID, ActSetVLANPCP, ActLoad, ActMove:
			dst = append(dst, acts[i])
		}
	}
	return append(dst, *final)
}

// bucketLive reports whether a bucket may be used: it watches nothing, or
// a live port, or a group with a live bucket. A select group's buckets of
// weight 0 are never used.
func (x *xlate) bucketLive(g *InstalledGroup, b *Bucket, depth int) bool {
	if depth >= maxLivenessDepth {
		x.report(TraceError, "bucket chaining exceeded "+strconv.Itoa(maxLivenessDepth)+" links")
		return false
	}
	if g.Type == GroupSelect && b.Weight == 0 {
		return false
	}
	if !b.hasLiveness() {
		return true
	}
	if b.WatchPort != PortNone && x.s.live != nil && x.s.live.PortLive(b.WatchPort) {
		return true
	}
	if b.WatchGroup != GroupAny {
		if wg := x.s.ofGroups[b.WatchGroup]; wg != nil && x.firstLive(wg, depth+1) >= 0 {
			return true
		}
	}
	return false
}

// firstLive returns the index of g's first live bucket, or -1.
func (x *xlate) firstLive(g *InstalledGroup, depth int) int {
	for i := range g.Buckets {
		if x.bucketLive(g, &g.Buckets[i], depth) {
			return i
		}
		x.reportNotLive(&g.Buckets[i])
	}
	return -1
}

func (x *xlate) reportNotLive(b *Bucket) {
	if x.trace == nil {
		return
	}
	why := ""
	if b.WatchPort != PortNone {
		why = "port " + portText(b.WatchPort)
	}
	if b.WatchGroup != GroupAny {
		if why != "" {
			why += " and "
		}
		why += "group " + strconv.FormatUint(uint64(b.WatchGroup), 10)
	}
	x.report(TraceDetail, "bucket "+strconv.FormatUint(uint64(b.ID), 10)+": not live due to "+why)
}

// pickSelect returns the bucket a select group picks for the flow, or -1
// if none is live, and consults the fields the hash read.
func (x *xlate) pickSelect(g *InstalledGroup) int {
	var basis uint32
	switch {
	case g.SelectionMethod == "hash" && len(g.Fields) > 0:
		basis = x.hashFields(g)
	default:
		x.consultSymmetricL4()
		basis = symmetricL4Hash(&x.flow)
	}
	best, bestScore := -1, uint32(0)
	for i := range g.Buckets {
		b := &g.Buckets[i]
		if !x.bucketLive(g, b, 0) {
			x.reportNotLive(b)
			continue
		}
		score := bucketScore(b, basis)
		if score >= bestScore {
			best, bestScore = i, score
		}
		if x.trace != nil {
			x.report(TraceDetail, "bucket "+strconv.FormatUint(uint64(b.ID), 10)+": score "+strconv.FormatUint(uint64(score), 10))
		}
	}
	return best
}

// dpHashSelect runs a select group with a hash map (a dp_hash group, or
// one without a selection method whose weights fit) as Open vSwitch
// does. A packet
// whose dp_hash is 0 has not been hashed yet: the translation commits the
// flow's changes, emits the datapath action hash (ActHash: the datapath
// hashes each packet's 5-tuple, or its symmetric L4 hash, into its
// dp_hash) and freezes the pipeline
// with this group action and the actions after it still to run
// (triggerFreeze), to recirculate. The packet comes back with its
// dp_hash set, and its translation picks the bucket that the group's hash
// map gives the low bits of dp_hash, the first live one from there on:
// the megaflow of the first pass matches no L4 port, and that of the
// second dp_hash under the map's mask, so that a handful of megaflows
// serve any number of connections.
//
// Where the pipeline cannot be frozen (in a group's bucket, in a clone,
// or a bridge without recirculation ids) the translation hashes the
// packet itself, as the datapath would (dpHash), and the megaflow
// matches what it hashed.
func (x *xlate) dpHashSelect(g *InstalledGroup) {
	if x.flow.DpHash == 0 && (x.inBucket > 0 || x.inClone > 0 || x.s.recircs == nil) {
		x.runChosen(g, x.pickDpHash(g, x.dpHash(g)))
		return
	}
	if x.flow.DpHash == 0 {
		// Open vSwitch's trace says so of the pass that hashes.
		x.report(TraceDetail, "no live bucket")
		x.commit()
		x.emit(Action{Type: ActHash, Value: uint64(dpHashAlg(g.hashParam))<<32 | g.hashParam&(1<<32-1)})
		x.triggerFreeze()
		return
	}
	// As Open vSwitch, the mask is the map's, not whether dp_hash is 0:
	// a hashed packet's is never 0.
	x.wc.DpHash |= uint32(len(g.hashMap) - 1)
	x.runChosen(g, x.pickDpHash(g, x.flow.DpHash))
}

// triggerFreeze starts freezing the pipeline at the group action that
// runs: the action lists that run stop, leaving their rest (run's
// unroll), and the translation ends with finishFreeze.
func (x *xlate) triggerFreeze() {
	x.freezing, x.freezeHere = true, true
	x.frozenTable = x.table
}

// unroll leaves what of acts is still to run when the pipeline freezes
// at acts[i]: from the group action itself in the list that ran it, from
// the action after acts[i] (the resubmit that led there) in the lists
// around it. The lists are rules' (or a packet out's) and never change,
// so the frozen state holds them rather than copies.
func (x *xlate) unroll(acts []Action, i int) {
	if !x.freezeHere {
		i++
	}
	x.freezeHere = false
	if i < len(acts) {
		x.frozen = append(x.frozen, acts[i:])
		if x.paused != nil {
			x.frozenFrames = append(x.frozenFrames, x.frame())
		}
	}
}

// finishFreeze freezes the pipeline's state with the actions still to
// run under a recirculation id and emits recirc(id), after the hash
// action the group emitted.
func (x *xlate) finishFreeze() {
	if x.paused != nil {
		x.finishPause() // continuation.go
		return
	}
	st := frozenState{
		table:       x.frozenTable,
		inPort:      x.flow.InPort,
		metadata:    x.flow.Metadata,
		regs:        x.flow.Regs,
		stack:       x.stack,
		conntracked: x.conntracked,
		acts:        x.frozen,
		actset:      x.actset,
	}
	x.emitRecirc(&st)
}

// pickDpHash returns the bucket of g's hash map for hash, the first live
// one from there on in the map's order, or -1 if none is live: the
// buckets keep their shares of the values that reach a live bucket when
// some are not.
func (x *xlate) pickDpHash(g *InstalledGroup, hash uint32) int {
	mask := uint32(len(g.hashMap) - 1)
	for i := range uint32(len(g.hashMap)) {
		b := int(g.hashMap[(hash+i)&mask])
		if x.bucketLive(g, &g.Buckets[b], 0) {
			return b
		}
	}
	return -1
}

// dpHash is the hash the datapath's hash action computes for the flow
// (DpHashOf), computed in the translation where it cannot recirculate;
// it consults what the hash reads.
func (x *xlate) dpHash(g *InstalledGroup) uint32 {
	if dpHashAlg(g.hashParam) == dpHashSymL4 {
		x.consultSymmetricL4()
	} else {
		x.consultL4()
	}
	return DpHashOf(&x.flow, g.hashParam)
}

// consultL4 consults what l4Hash reads.
func (x *xlate) consultL4() {
	k, wc := &x.flow, &x.wc
	switch k.DlType {
	case EthTypeIPv4, EthTypeARP:
		wc.NwSrc, wc.NwDst = ^uint32(0), ^uint32(0)
	case EthTypeIPv6:
		for i := range 16 {
			wc.IPv6Src[i], wc.IPv6Dst[i] = 0xff, 0xff
		}
	default:
		return
	}
	wc.NwProto = 0xff
	switch k.NwProto {
	case IPProtoTCP, IPProtoUDP, IPProtoSCTP:
		wc.TpSrc, wc.TpDst = 0xffff, 0xffff
	}
}

// hashFields hashes the fields of selection_method=hash in Open vSwitch's
// field order, skipping those whose prerequisites the packet lacks, and
// consults the hashed bits (and what the prerequisites read).
func (x *xlate) hashFields(g *InstalledGroup) uint32 {
	basis := hashUint64(g.SelectionParam)
	var buf [16]byte
	for _, hf := range g.Fields { // in Open vSwitch's order (newInstalled)
		f := fieldByID[hf.Field]
		h := hashableByID(hf.Field)
		if !x.prereqKey(f.pre) {
			continue
		}
		v := getField(&x.flow, f).and(hf.mask)
		basis = hashBytes(fieldBytes(buf[:0], v, h.nBytes), basis)
		setFieldBits(&x.wc, f, hf.mask, hf.mask)
	}
	return basis
}

// sortedFields returns the group's hash fields in Open vSwitch's field
// order.
func (g *Group) sortedFields() []HashField {
	fs := make([]HashField, len(g.Fields))
	copy(fs, g.Fields)
	for i := 1; i < len(fs); i++ {
		for j := i; j > 0 && hashableByID(fs[j].Field).order < hashableByID(fs[j-1].Field).order; j-- {
			fs[j], fs[j-1] = fs[j-1], fs[j]
		}
	}
	return fs
}

// consultSymmetricL4 consults what the default select hash reads, as Open
// vSwitch's flow_mask_hash_fields for the symmetric L4 hash.
func (x *xlate) consultSymmetricL4() {
	k, wc := &x.flow, &x.wc
	wc.DlSrc = [6]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
	wc.DlDst = wc.DlSrc
	switch k.DlType {
	case EthTypeIPv4:
		wc.NwSrc, wc.NwDst = ^uint32(0), ^uint32(0)
	case EthTypeIPv6:
		for i := range 16 {
			wc.IPv6Src[i], wc.IPv6Dst[i] = 0xff, 0xff
		}
	}
	if k.DlType == EthTypeIPv4 || k.DlType == EthTypeIPv6 {
		wc.NwProto = 0xff
		if k.NwProto != IPProtoUDP {
			switch {
			case k.NwProto == IPProtoICMPv6 && k.DlType == EthTypeIPv6:
				wc.TpSrc |= 0xff
				wc.TpDst |= 0xff
			default:
				wc.TpSrc, wc.TpDst = 0xffff, 0xffff
			}
		}
	}
	for i := range wc.VLANs {
		wc.VLANs[i].TCI |= VLANVIDMask | VLANPresent
	}
}
