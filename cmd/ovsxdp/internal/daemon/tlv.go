package daemon

import (
	"strings"

	"github.com/ovsxdp/ovsxdp/cmd/ovsxdp/internal/ofconn"
	"github.com/ovsxdp/ovsxdp/flow"
	"github.com/ovsxdp/ovsxdp/flow/ofconv"
	"github.com/ovsxdp/ovsxdp/flow/openflow"
)

// The TLV map commands (Geneve options to tun_metadata0-63), modelled on
// ovs-ofctl's.
func init() {
	register(
		&verb{VerbInfo: VerbInfo{Name: "add-tlv-map", Usage: "BR {class=C,type=T,len=L}->tun_metadataN[,...]", Short: "Map Geneve options to tunnel metadata fields (all or none)", Min: 2, Max: 2}, changes: true, run: (*Daemon).addTLVMap},
		&verb{VerbInfo: VerbInfo{Name: "del-tlv-map", Usage: "BR [{class=C,type=T,len=L}->tun_metadataN[,...]]", Short: "Remove the mappings of the fields given (all without any)", Min: 1, Max: 2}, changes: true, run: (*Daemon).delTLVMap},
		&verb{VerbInfo: VerbInfo{Name: "dump-tlv-map", Usage: "BR", Short: "Print the Geneve option to tunnel metadata mappings", Min: 1, Max: 1}, run: (*Daemon).dumpTLVMap},
	)
}

func (d *Daemon) addTLVMap(c *call) (string, error) {
	b, err := d.bridgeLocked(c.args[0])
	if err != nil {
		return "", err
	}
	ms, err := flow.ParseTLVMappings(c.args[1])
	if err != nil {
		return "", err
	}
	return "", b.dp.Table().ModTLVMap(flow.TLVAdd, ms)
}

func (d *Daemon) delTLVMap(c *call) (string, error) {
	b, err := d.bridgeLocked(c.args[0])
	if err != nil {
		return "", err
	}
	if len(c.args) < 2 || strings.TrimSpace(c.args[1]) == "" {
		return "", b.dp.Table().ModTLVMap(flow.TLVClear, nil)
	}
	ms, err := flow.ParseTLVMappings(c.args[1])
	if err != nil {
		return "", err
	}
	return "", b.dp.Table().ModTLVMap(flow.TLVDelete, ms)
}

// dumpTLVMap prints the map as ovs-ofctl dump-tlv-map prints the
// NXT_TLV_TABLE_REPLY (without its first line).
func (d *Daemon) dumpTLVMap(c *call) (string, error) {
	b, err := d.bridgeLocked(c.args[0])
	if err != nil {
		return "", err
	}
	m := b.dp.Table().TLVMap()
	return flow.FormatTLVTable(flow.TunMetaSpace, flow.NumTunMeta, m.Mappings()), nil
}

// formatTLVMap writes a bridge's TLV map as add-tlv-map takes it, for the
// state file; "" when nothing is mapped.
func formatTLVMap(m *flow.TLVMap) string {
	var parts []string
	for _, mp := range m.Mappings() {
		parts = append(parts, flow.FormatTLVMapping(mp))
	}
	return strings.Join(parts, ",")
}

// restoreTLVMap maps a state file's options on a bridge, before its flows
// (which may name the fields).
func restoreTLVMap(b *bridge, s string) error {
	if s == "" {
		return nil
	}
	ms, err := flow.ParseTLVMappings(s)
	if err != nil {
		return err
	}
	return b.dp.Table().ModTLVMap(flow.TLVAdd, ms)
}

var _ ofconn.TLVTabler = (*ofBridge)(nil)

// TLVTableMod runs an NXT_TLV_TABLE_MOD as add-tlv-map and del-tlv-map do.
func (o *ofBridge) TLVTableMod(m *openflow.TLVTableMod) error {
	if err := o.lock(); err != nil {
		return err
	}
	defer o.unlock()
	if err := o.b.dp.Table().ModTLVMap(m.Command, ofconv.TLVMappings(m.Mappings)); err != nil {
		return ofconv.TLVError(err)
	}
	o.changedLocked("tlv table mod")
	return nil
}

// TLVTable answers an NXT_TLV_TABLE_REQUEST.
func (o *ofBridge) TLVTable() *openflow.TLVTableReply {
	return ofconv.TLVTableReply(o.b.dp.Table().TLVMap())
}
