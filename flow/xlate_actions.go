package flow

// TranslateActions translates acts for a packet with key k as Open
// vSwitch translates a packet out's actions: they are no rule's, but run
// like a rule's, and resubmit and goto_table look up s's tables from
// table 0. It returns what the packet does.
func (s *TableSnapshot) TranslateActions(k *Key, acts []Action) *Translation {
	var x xlate
	x = xlate{s: s, flow: *k, base: *k, orig: k, packetOut: true}
	x.wc.RecircID, x.wc.InPort, x.wc.DlType = ^uint32(0), ^uint32(0), 0xffff
	x.wc.tunnelReceived(k)
	x.conntracked = k.CtState&CtStateTracked != 0
	x.run(acts)
	if x.freezing { // a dp_hash group: its actions recirculate, as a rule's do
		x.finishFreeze()
	}
	return x.result()
}

// result commits the flow's last changes and returns the translation of
// a packet out's or a continuation's actions.
func (x *xlate) result() *Translation {
	x.commit()
	tr := x.tr
	tr.Actions = x.acts
	tr.Final = x.flow
	tr.Mask = x.wc
	tr.Verdict = x.stop
	if x.err != VerdictOK {
		tr.Actions = nil
		tr.Verdict = x.err
	}
	return &tr
}
