package ofconn

import (
	"github.com/ovsxdp/ovsxdp/flow/openflow"
)

// Continuations (flow/continuation.go): a packet in of a pipeline that a
// controller(pause) action froze carries its continuation, under the
// bridge's id (Server.id, random for each server, so that a continuation
// of another bridge, or of this one before a restart, is stale); the
// controller sends it back in NXT_RESUME, and the bridge resumes the
// pipeline on the packet.

// Resumer is a Bridge that resumes paused pipelines.
type Resumer interface {
	// Resume resumes the pipeline that m's continuation froze, on m's
	// packet with m's pipeline fields; id is the bridge's id, which the
	// continuation must carry (else OFPERR_NXR_STALE).
	Resume(v uint8, m *openflow.Resume, id [16]byte) error
}

// Nicira's NXT_RESUME errors (the experimenter codes of OpenFlow 1.2 on;
// OpenFlow 1.0's, OFPET_BAD_REQUEST codes, are openflow.CodeTLV10's).
const (
	CodeResumeNotSupported uint16 = 34 // OFPERR_NXR_NOT_SUPPORTED
	CodeResumeStale        uint16 = 35 // OFPERR_NXR_STALE
)

// ResumeError is an NXT_RESUME error of code code.
func ResumeError(code uint16, detail string) *openflow.Error {
	return &openflow.Error{Type: openflow.ErrTypeExperimenter, Code: code, Sentinel: openflow.ErrBadMessage, Detail: detail}
}

// resume handles NXT_RESUME.
func (c *conn) resume(m *openflow.Resume) error {
	r, ok := c.s.br.(Resumer)
	if !ok {
		return ResumeError(CodeResumeNotSupported, "this bridge resumes no pipelines")
	}
	if !m.HasContinuation {
		return ResumeError(CodeResumeStale, "no continuation")
	}
	return r.Resume(c.version, m, c.s.id)
}
