package ofconn

import (
	"encoding/binary"
	"fmt"
	"sync"

	"github.com/ovsxdp/ovsxdp/flow/openflow"
)

// Table mods (OFPT_TABLE_MOD, OpenFlow 1.3 on): OpenFlow 1.4's eviction
// and vacancy events, per table, as Open vSwitch keeps them. ovsxdp's
// tables have no size limit, so there is nothing to evict and the
// vacancy is always 100%: the settings are kept and described
// (OFPMP_TABLE_DESC), and, as in Open vSwitch with unlimited tables, no
// vacancy event ever fires. They last as long as the bridge's server.

// typeTableMod is OFPT_TABLE_MOD (OpenFlow 1.1 on).
const typeTableMod uint8 = 17

// Table mod configuration bits and properties (OpenFlow 1.4), and the
// errors (OFPET_TABLE_MOD_FAILED, OpenFlow 1.3 numbering).
const (
	tableConfigEviction      uint32 = 1 << 2 // OFPTC14_EVICTION
	tableConfigVacancyEvents uint32 = 1 << 3 // OFPTC14_VACANCY_EVENTS
	tablePropVacancy         uint16 = 3      // OFPTMPT14_VACANCY

	errTypeTableModFailed uint16 = 8
	codeTableEPerm        uint16 = 2
	codeBadPropertyValue  uint16 = 2 // OFPBPC_BAD_VALUE
)

// tableConfig is one table's settings.
type tableConfig struct {
	eviction, vacancy bool
	down, up          uint8 // the vacancy thresholds, in percent
}

// tableConfigs are a bridge's tables' settings.
type tableConfigs struct {
	mu     sync.Mutex
	tables [nTables]tableConfig
}

// tableMod runs OFPT_TABLE_MOD's body, as Open vSwitch does: table 255
// is every table; OpenFlow 1.3's configuration says nothing Open vSwitch
// keeps; OpenFlow 1.4's sets eviction and vacancy events on or off, with
// a vacancy property giving the thresholds (down no higher than up, both
// at most 100); an eviction property (whose value Open vSwitch reads as
// its own setting: 1 on, 2 off) changes it too.
func (c *conn) tableMod(body []byte) error {
	if c.role == openflow.RoleSlave {
		return badRequest(codeBadReqIsSlave, "table mod from a slave")
	}
	if len(body) < 8 || c.version < openflow.Version14 && len(body) != 8 {
		return badLen("table mod of %d bytes", len(body))
	}
	table, config := body[0], binary.BigEndian.Uint32(body[4:])
	if c.version < openflow.Version14 {
		return checkTable(table)
	}
	eviction, vacancy := config&tableConfigEviction != 0, config&tableConfigVacancyEvents != 0
	var down, up uint8
	props, err := openflow.SplitProperties(body[8:])
	if err != nil {
		return err
	}
	for _, p := range props {
		switch p.Type {
		case tablePropEviction:
			if len(p.Data) != 4 {
				return propertyError(openflow.CodeBadPropertyLen, "eviction property of %d bytes", len(p.Data))
			}
			switch binary.BigEndian.Uint32(p.Data) {
			case 1:
				eviction = true
			case 2:
				eviction = false
			}
		case tablePropVacancy:
			if len(p.Data) != 4 {
				return propertyError(openflow.CodeBadPropertyLen, "vacancy property of %d bytes", len(p.Data))
			}
			down, up = p.Data[0], p.Data[1]
			if down > up || up > 100 || p.Data[2] != 0 {
				return propertyError(codeBadPropertyValue, "vacancy down %d, up %d, vacancy %d", down, up, p.Data[2])
			}
		default:
			return unsupported(openflow.CodeBadRequestType, "table mod property %d", p.Type)
		}
	}
	if err := checkTable(table); err != nil {
		return err
	}
	tc := &c.s.tableCfg
	tc.mu.Lock()
	defer tc.mu.Unlock()
	for t := range tc.tables {
		if table == 0xff || int(table) == t {
			tc.tables[t] = tableConfig{eviction: eviction, vacancy: vacancy, down: down, up: up}
		}
	}
	return nil
}

// checkTable refuses table 254 (255 is every table) as Open vSwitch
// does, whose table 254 is its own, hidden and read-only:
// OFPTMFC_EPERM.
func checkTable(table uint8) error {
	if table != 0xff && int(table) >= nTables {
		return &openflow.Error{Type: errTypeTableModFailed, Code: codeTableEPerm, Sentinel: openflow.ErrBadMessage,
			Detail: fmt.Sprintf("table %d is read-only", table)}
	}
	return nil
}

// tableDesc answers OFPMP_TABLE_DESC (OpenFlow 1.4 on): each table, its
// configuration, the eviction flags property, and with vacancy events on
// the vacancy property (its vacancy always 100%).
func (s *Server) tableDesc() *openflow.MultipartRaw {
	tc := &s.tableCfg
	tc.mu.Lock()
	defer tc.mu.Unlock()
	var b []byte
	for t, cfg := range tc.tables {
		start := len(b)
		b = binary.BigEndian.AppendUint16(b, 0)
		b = append(b, byte(t), 0)
		var config uint32
		if cfg.eviction {
			config |= tableConfigEviction
		}
		if cfg.vacancy {
			config |= tableConfigVacancyEvents
		}
		b = binary.BigEndian.AppendUint32(b, config)
		b = binary.BigEndian.AppendUint16(b, tablePropEviction)
		b = binary.BigEndian.AppendUint16(b, 8)
		b = binary.BigEndian.AppendUint32(b, tableEvictionFlags)
		if cfg.vacancy {
			b = binary.BigEndian.AppendUint16(b, tablePropVacancy)
			b = binary.BigEndian.AppendUint16(b, 8)
			b = append(b, cfg.down, cfg.up, 100, 0)
		}
		binary.BigEndian.PutUint16(b[start:], uint16(len(b)-start))
	}
	return &openflow.MultipartRaw{Reply: true, Type: mpTableDesc, Body: b}
}
