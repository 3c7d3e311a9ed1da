package openflow

// ErrorMsg is OFPT_ERROR. For Type == ErrTypeExperimenter (1.2+), Code is
// the experimenter's code and Experimenter its id. Data is normally the
// start of the offending message.
type ErrorMsg struct {
	Type, Code   uint16
	Experimenter uint32
	Data         []byte
}

func decodeError(r *rd) (*ErrorMsg, error) {
	m := &ErrorMsg{Type: r.u16("error"), Code: r.u16("error")}
	if m.Type == ErrTypeExperimenter {
		m.Experimenter = r.u32("experimenter error")
	}
	m.Data = r.rest()
	return m, r.err
}

func (m *ErrorMsg) msgType(v uint8) (uint8, error) { return typeOf(kError, v) }
func (m *ErrorMsg) appendBody(_ uint8, w *wr) error {
	w.u16(m.Type)
	w.u16(m.Code)
	if m.Type == ErrTypeExperimenter {
		w.u32(m.Experimenter)
	}
	w.bytes(m.Data)
	return nil
}

// EchoRequest is OFPT_ECHO_REQUEST.
type EchoRequest struct{ Data []byte }

// EchoReply is OFPT_ECHO_REPLY.
type EchoReply struct{ Data []byte }

func (m *EchoRequest) msgType(v uint8) (uint8, error) { return typeOf(kEchoRequest, v) }
func (m *EchoRequest) appendBody(_ uint8, w *wr) error {
	w.bytes(m.Data)
	return nil
}
func (m *EchoReply) msgType(v uint8) (uint8, error) { return typeOf(kEchoReply, v) }
func (m *EchoReply) appendBody(_ uint8, w *wr) error {
	w.bytes(m.Data)
	return nil
}

// empty is the shared encoding of the body-less messages.
type empty struct{}

func (empty) appendBody(uint8, *wr) error { return nil }

// FeaturesRequest is OFPT_FEATURES_REQUEST.
type FeaturesRequest struct{ empty }

// GetConfigRequest is OFPT_GET_CONFIG_REQUEST.
type GetConfigRequest struct{ empty }

// BarrierRequest is OFPT_BARRIER_REQUEST.
type BarrierRequest struct{ empty }

// BarrierReply is OFPT_BARRIER_REPLY.
type BarrierReply struct{ empty }

func (m *FeaturesRequest) msgType(v uint8) (uint8, error)  { return typeOf(kFeaturesRequest, v) }
func (m *GetConfigRequest) msgType(v uint8) (uint8, error) { return typeOf(kGetConfigRequest, v) }
func (m *BarrierRequest) msgType(v uint8) (uint8, error)   { return typeOf(kBarrierRequest, v) }
func (m *BarrierReply) msgType(v uint8) (uint8, error)     { return typeOf(kBarrierReply, v) }

// FeaturesReply is OFPT_FEATURES_REPLY. Actions and Ports exist in 1.0
// only; AuxiliaryID in 1.3+ only.
type FeaturesReply struct {
	DatapathID   uint64
	NBuffers     uint32
	NTables      uint8
	AuxiliaryID  uint8
	Capabilities uint32
	Actions      uint32
	Ports        []Port
}

func decodeFeaturesReply(v uint8, r *rd) (*FeaturesReply, error) {
	m := &FeaturesReply{DatapathID: r.u64("features"), NBuffers: r.u32("features"), NTables: r.u8("features")}
	if v == Version10 {
		r.skip(3, "features")
		m.Capabilities = r.u32("features")
		m.Actions = r.u32("features")
		var err error
		if m.Ports, err = decodeEach(v, r, m.Ports, decodePort); err != nil {
			return nil, err
		}
	} else {
		m.AuxiliaryID = r.u8("features")
		r.skip(2, "features")
		m.Capabilities = r.u32("features")
		r.skip(4, "features")
	}
	return m, r.err
}

func (m *FeaturesReply) msgType(v uint8) (uint8, error) { return typeOf(kFeaturesReply, v) }
func (m *FeaturesReply) appendBody(v uint8, w *wr) error {
	w.u64(m.DatapathID)
	w.u32(m.NBuffers)
	w.u8(m.NTables)
	if v == Version10 {
		w.zeros(3)
		w.u32(m.Capabilities)
		w.u32(m.Actions)
		for i := range m.Ports {
			if err := m.Ports[i].append(v, w); err != nil {
				return err
			}
		}
		return nil
	}
	if len(m.Ports) != 0 {
		return ErrUnencodable
	}
	w.u8(m.AuxiliaryID)
	w.zeros(2)
	w.u32(m.Capabilities)
	w.zeros(4)
	return nil
}

// SwitchConfig is the body of OFPT_GET_CONFIG_REPLY and OFPT_SET_CONFIG.
type SwitchConfig struct {
	Flags       uint16
	MissSendLen uint16
}

// GetConfigReply is OFPT_GET_CONFIG_REPLY.
type GetConfigReply struct{ SwitchConfig }

// SetConfig is OFPT_SET_CONFIG.
type SetConfig struct{ SwitchConfig }

func decodeConfig(r *rd) SwitchConfig {
	return SwitchConfig{Flags: r.u16("config"), MissSendLen: r.u16("config")}
}

func (c *SwitchConfig) appendBody(_ uint8, w *wr) error {
	w.u16(c.Flags)
	w.u16(c.MissSendLen)
	return nil
}
func (m *GetConfigReply) msgType(v uint8) (uint8, error) { return typeOf(kGetConfigReply, v) }
func (m *SetConfig) msgType(v uint8) (uint8, error)      { return typeOf(kSetConfig, v) }

// Role is the body of OFPT_ROLE_REQUEST / OFPT_ROLE_REPLY (1.3+).
type Role struct {
	Role         uint32
	GenerationID uint64
}

// Controller roles.
const (
	RoleNoChange uint32 = 0
	RoleEqual    uint32 = 1
	RoleMaster   uint32 = 2
	RoleSlave    uint32 = 3
)

// RoleRequest is OFPT_ROLE_REQUEST.
type RoleRequest struct{ Role }

// RoleReply is OFPT_ROLE_REPLY.
type RoleReply struct{ Role }

func decodeRole(r *rd) Role {
	m := Role{Role: r.u32("role")}
	r.skip(4, "role")
	m.GenerationID = r.u64("role")
	return m
}

func (m *Role) appendBody(_ uint8, w *wr) error {
	w.u32(m.Role)
	w.zeros(4)
	w.u64(m.GenerationID)
	return nil
}
func (m *RoleRequest) msgType(v uint8) (uint8, error) { return typeOf(kRoleRequest, v) }
func (m *RoleReply) msgType(v uint8) (uint8, error)   { return typeOf(kRoleReply, v) }
