package openflow

// Table feature property types (ofp_table_feature_prop_type). The even
// ones up to TFPApplySetfield are required in a reply; each odd one is the
// table-miss variant of the one before it.
const (
	TFPInstructions     uint16 = 0
	TFPNextTables       uint16 = 2
	TFPWriteActions     uint16 = 4
	TFPApplyActions     uint16 = 6
	TFPMatch            uint16 = 8
	TFPWildcards        uint16 = 10
	TFPWriteSetfield    uint16 = 12
	TFPApplySetfield    uint16 = 14
	TFPExperimenter     uint16 = 0xfffe
	TFPExperimenterMiss uint16 = 0xffff
)

// TableFeatures is one struct ofp_table_features (1.3+). Config is 1.3's
// config, 1.4's capabilities. Props are kept as generic properties: their
// contents (instruction, action and OXM id lists) are for the caller.
type TableFeatures struct {
	TableID       uint8
	Name          string
	MetadataMatch uint64
	MetadataWrite uint64
	Config        uint32
	MaxEntries    uint32
	Props         []Property
}

// TableFeaturesRequest is OFPMP_TABLE_FEATURES's request; ovs-ofctl sends
// it without tables before add-flow in OpenFlow 1.3+.
type TableFeaturesRequest struct {
	Multipart
	Tables []TableFeatures
}

// TableFeaturesReply describes the tables.
type TableFeaturesReply struct {
	Multipart
	Tables []TableFeatures
}

func decodeTableFeatures(r *rd) ([]TableFeatures, error) {
	ts := []TableFeatures{}
	for r.err == nil && r.len() > 0 {
		l := int(r.u16("table features"))
		if l < 64 || l%8 != 0 {
			return nil, badMessage("table features length %d", l)
		}
		tr := r.sub(l-2, "table features")
		t := TableFeatures{TableID: tr.u8("")}
		tr.skip(5, "")
		t.Name = tr.str(32, "")
		t.MetadataMatch, t.MetadataWrite = tr.u64(""), tr.u64("")
		t.Config, t.MaxEntries = tr.u32(""), tr.u32("")
		if tr.err != nil {
			return nil, tr.err
		}
		props, err := decodeProps(tr, "table feature property")
		if err != nil {
			return nil, err
		}
		t.Props = props
		ts = append(ts, t)
	}
	return ts, r.err
}

func appendTableFeatures(w *wr, ts []TableFeatures) error {
	for i := range ts {
		t := &ts[i]
		start := w.pos()
		w.u16(0)
		w.u8(t.TableID)
		w.zeros(5)
		w.str(t.Name, 32)
		w.u64(t.MetadataMatch)
		w.u64(t.MetadataWrite)
		w.u32(t.Config)
		w.u32(t.MaxEntries)
		if err := appendProps(w, t.Props); err != nil {
			return err
		}
		if w.pos()-start > 0xffff {
			return ErrTooLong
		}
		w.put16(start, uint16(w.pos()-start))
	}
	return nil
}

func (m *TableFeaturesRequest) msgType(v uint8) (uint8, error) { return mpType(false, v) }
func (m *TableFeaturesRequest) appendBody(v uint8, w *wr) error {
	if err := no10(v, "table features"); err != nil {
		return err
	}
	mpHeader(v, w, m.Multipart, MPTableFeatures)
	return appendTableFeatures(w, m.Tables)
}

func (m *TableFeaturesReply) msgType(v uint8) (uint8, error) { return mpType(true, v) }
func (m *TableFeaturesReply) appendBody(v uint8, w *wr) error {
	if err := no10(v, "table features"); err != nil {
		return err
	}
	mpHeader(v, w, m.Multipart, MPTableFeatures)
	return appendTableFeatures(w, m.Tables)
}
