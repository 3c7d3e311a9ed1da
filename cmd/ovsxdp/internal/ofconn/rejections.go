package ofconn

import (
	"cmp"
	"errors"
	"hash/fnv"
	"slices"
	"sync"

	"github.com/ovsxdp/ovsxdp/flow/openflow"
)

// Rejection accounting: every message the server's connections receive
// is counted by its name, and every error reply they send by the name of
// the message it answers, the error and what exactly was refused (the
// action, match field or instruction the codec or the bridge named), so
// that an operator pointing a controller at ovsxdp sees what it asked for
// that ovsxdp does not do.

// maxRejectionKeys bounds the distinct rows kept; further ones are
// counted in one row whose Reason is OtherReason.
const maxRejectionKeys = 512

// maxExample bounds the bytes of the example message a row keeps.
const maxExample = 4096

// maxDistinct bounds the different messages a row tells apart.
const maxDistinct = 4096

// OtherReason is the reason of the row that counts rejections beyond
// the distinct rows kept.
const OtherReason = "(other reasons)"

// Rejection is one row of counts: error replies sent for messages named
// Message, with error Type and Code (OpenFlow 1.3 numbering, whatever
// version the reply took), for Reason.
type Rejection struct {
	// Message names the refused message as Open vSwitch does
	// (OFPT_FLOW_MOD, NXT_TLV_TABLE_REQUEST, OFPMP_METER_FEATURES).
	Message string
	// Error names Type and Code (OFPBAC_BAD_EXP_TYPE).
	Error      string
	Type, Code uint16
	// Reason is the refused item (NXAST_CT, ct_state, OFPIT_WRITE_ACTIONS)
	// where the error names one, ReasonUnsupported for a message ovsxdp
	// does not implement, else the error's detail.
	Reason string
	Count  uint64
	// Distinct is how many different messages (transaction ids aside)
	// the row counts, up to 4096: a controller that sends the same
	// refused flow again on each reconnection counts it once here.
	Distinct int
	// Example is the first message counted in the row (at most 4 KiB
	// of it), for ovs-ofctl ofp-print.
	Example []byte
}

type rejectionKey struct {
	msg       string
	typ, code uint16
	reason    string
}

// accounting holds the counts of a Server.
type accounting struct {
	mu       sync.Mutex // protects the maps
	received map[string]uint64
	rejected map[rejectionKey]uint64
	examples map[rejectionKey][]byte
	distinct map[rejectionKey]map[uint64]struct{} // hashes of the messages, xid zeroed
}

// countReceived counts the message b.
func (a *accounting) countReceived(b []byte) {
	name := MessageName(b)
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.received == nil {
		a.received = map[string]uint64{}
	}
	if _, ok := a.received[name]; !ok && len(a.received) >= maxRejectionKeys {
		name = OtherReason
	}
	a.received[name]++
}

// countRejected counts one error reply of type typ and code code to the
// message b, which err refused (err may be nil).
func (a *accounting) countRejected(b []byte, typ, code uint16, err error) {
	k := rejectionKey{msg: MessageName(b), typ: typ, code: code, reason: Reason(err)}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.rejected == nil {
		a.rejected = map[rejectionKey]uint64{}
		a.examples = map[rejectionKey][]byte{}
		a.distinct = map[rejectionKey]map[uint64]struct{}{}
	}
	if _, ok := a.rejected[k]; !ok && len(a.rejected) >= maxRejectionKeys {
		k.reason = OtherReason
	}
	if a.rejected[k] == 0 {
		a.examples[k] = append([]byte(nil), b[:min(len(b), maxExample)]...)
		a.distinct[k] = map[uint64]struct{}{}
	}
	a.rejected[k]++
	if d := a.distinct[k]; len(d) < maxDistinct {
		d[messageHash(b)] = struct{}{}
	}
}

// messageHash hashes the message b without its transaction id.
func messageHash(b []byte) uint64 {
	h := fnv.New64a()
	if len(b) < openflow.HeaderLen {
		h.Write(b)
		return h.Sum64()
	}
	h.Write(b[:4])
	h.Write(b[openflow.HeaderLen:])
	return h.Sum64()
}

// Reason is what an error reply counts as the reason for err: the item
// an *openflow.Error names, else its detail, else err's text.
func Reason(err error) string {
	if err == nil {
		return ""
	}
	var oe *openflow.Error
	if errors.As(err, &oe) {
		if oe.Item != "" {
			return oe.Item
		}
		return oe.Detail
	}
	return err.Error()
}

// Received returns how many messages of each name the server's
// connections received (hellos included).
func (s *Server) Received() map[string]uint64 {
	s.acct.mu.Lock()
	defer s.acct.mu.Unlock()
	out := make(map[string]uint64, len(s.acct.received))
	for k, v := range s.acct.received {
		out[k] = v
	}
	return out
}

// Rejections returns the error replies the server's connections sent,
// most frequent first (then by message, error and reason).
func (s *Server) Rejections() []Rejection {
	s.acct.mu.Lock()
	out := make([]Rejection, 0, len(s.acct.rejected))
	for k, n := range s.acct.rejected {
		out = append(out, Rejection{Message: k.msg, Error: ErrorName(k.typ, k.code), Type: k.typ, Code: k.code, Reason: k.reason, Count: n,
			Distinct: len(s.acct.distinct[k]), Example: s.acct.examples[k]})
	}
	s.acct.mu.Unlock()
	slices.SortFunc(out, func(a, b Rejection) int {
		return cmp.Or(cmp.Compare(b.Count, a.Count), cmp.Compare(a.Message, b.Message),
			cmp.Compare(a.Type, b.Type), cmp.Compare(a.Code, b.Code), cmp.Compare(a.Reason, b.Reason))
	})
	return out
}
