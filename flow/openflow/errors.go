package openflow

import (
	"errors"
	"fmt"
)

// Sentinel errors. Every decoding error wraps one of them and is also an
// *Error carrying the OpenFlow error type and code a switch replies with.
var (
	// ErrBadLength: a length field disagrees with the bytes present.
	ErrBadLength = errors.New("openflow: bad length")
	// ErrTooLong: a message is larger than the reader's bound.
	ErrTooLong = errors.New("openflow: message too long")
	// ErrBadVersion: an OpenFlow version this package does not speak.
	ErrBadVersion = errors.New("openflow: unsupported version")
	// ErrBadMessage: a message body that is malformed in another way.
	ErrBadMessage = errors.New("openflow: malformed message")
	// ErrBadAction: an action that is unknown or malformed.
	ErrBadAction = errors.New("openflow: bad action")
	// ErrBadInstruction: an instruction that is unknown or malformed.
	ErrBadInstruction = errors.New("openflow: bad instruction")
	// ErrBadMatch: a match that is malformed.
	ErrBadMatch = errors.New("openflow: bad match")
	// ErrIncompatible: hello negotiation found no common version.
	ErrIncompatible = errors.New("openflow: no common version")
	// ErrUnencodable: a value that the requested version cannot carry.
	ErrUnencodable = errors.New("openflow: cannot encode for this version")
)

// Error types (ofp_error_type), numbered as in OpenFlow 1.3 and later.
// OpenFlow 1.0 shares the numbers up to ErrTypeBadAction; Open vSwitch
// sends the others to 1.0 peers as Nicira vendor errors.
const (
	ErrTypeHelloFailed    uint16 = 0
	ErrTypeBadRequest     uint16 = 1
	ErrTypeBadAction      uint16 = 2
	ErrTypeBadInstruction uint16 = 3
	ErrTypeBadMatch       uint16 = 4
	ErrTypeFlowModFailed  uint16 = 5
	ErrTypeGroupModFailed uint16 = 6
	ErrTypePortModFailed  uint16 = 7
	// OFPET_BAD_PROPERTY and OFPET_ASYNC_CONFIG_FAILED are numbered as
	// in OpenFlow 1.4; Open vSwitch sends them to earlier versions in
	// other forms.
	ErrTypeBadProperty       uint16 = 14
	ErrTypeAsyncConfigFailed uint16 = 15
	ErrTypeExperimenter      uint16 = 0xffff
)

// Error codes used by this package (OpenFlow 1.3 numbering).
const (
	CodeHelloIncompatible uint16 = 0 // OFPHFC_INCOMPATIBLE

	CodeBadRequestVersion      uint16 = 0 // OFPBRC_BAD_VERSION
	CodeBadRequestType         uint16 = 1 // OFPBRC_BAD_TYPE
	CodeBadRequestMultipart    uint16 = 2 // OFPBRC_BAD_MULTIPART (BAD_STAT in 1.0)
	CodeBadRequestExperimenter uint16 = 3 // OFPBRC_BAD_EXPERIMENTER (BAD_VENDOR)
	CodeBadRequestExpType      uint16 = 4 // OFPBRC_BAD_EXP_TYPE (BAD_SUBTYPE)
	CodeBadRequestLen          uint16 = 6 // OFPBRC_BAD_LEN

	CodeBadPropertyType uint16 = 0 // OFPBPC_BAD_TYPE
	CodeBadPropertyLen  uint16 = 1 // OFPBPC_BAD_LEN

	CodeAsyncConfigInvalid     uint16 = 0 // OFPACFC_INVALID
	CodeAsyncConfigUnsupported uint16 = 1 // OFPACFC_UNSUPPORTED

	CodeBadActionType         uint16 = 0 // OFPBAC_BAD_TYPE
	CodeBadActionLen          uint16 = 1 // OFPBAC_BAD_LEN
	CodeBadActionExperimenter uint16 = 2 // OFPBAC_BAD_EXPERIMENTER
	CodeBadActionExpType      uint16 = 3 // OFPBAC_BAD_EXP_TYPE
	CodeBadActionArgument     uint16 = 5 // OFPBAC_BAD_ARGUMENT

	CodeBadInstructionUnknown uint16 = 0 // OFPBIC_UNKNOWN_INST
	CodeBadInstructionLen     uint16 = 7 // OFPBIC_BAD_LEN

	CodeBadMatchType  uint16 = 0 // OFPBMC_BAD_TYPE
	CodeBadMatchLen   uint16 = 1 // OFPBMC_BAD_LEN
	CodeBadMatchField uint16 = 6 // OFPBMC_BAD_FIELD
)

// Error is a decoding error with the OpenFlow error type and code that
// describes it. Is reports a match with the wrapped sentinel.
type Error struct {
	Type, Code uint16
	Sentinel   error
	Detail     string
	// Item names what was refused, where the error is about one action
	// ("NXAST_CT", "OFPAT_SET_QUEUE"), match field ("ct_state") or
	// instruction ("OFPIT_METER"), as Open vSwitch names it; empty when
	// the error is about the message as a whole.
	Item string
}

func (e *Error) Error() string {
	return fmt.Sprintf("%v: %s", e.Sentinel, e.Detail)
}

func (e *Error) Unwrap() error { return e.Sentinel }

func newErr(sentinel error, typ, code uint16, format string, args ...any) *Error {
	return &Error{Type: typ, Code: code, Sentinel: sentinel, Detail: fmt.Sprintf(format, args...)}
}

func badLen(what string) *Error {
	return newErr(ErrBadLength, ErrTypeBadRequest, CodeBadRequestLen, "%s: truncated or bad length", what)
}

func badAction(code uint16, format string, args ...any) *Error {
	return newErr(ErrBadAction, ErrTypeBadAction, code, format, args...)
}

func badInstruction(code uint16, format string, args ...any) *Error {
	return newErr(ErrBadInstruction, ErrTypeBadInstruction, code, format, args...)
}

func badMatch(code uint16, format string, args ...any) *Error {
	return newErr(ErrBadMatch, ErrTypeBadMatch, code, format, args...)
}

// withItem sets the error's Item and returns it.
func (e *Error) withItem(item string) *Error {
	e.Item = item
	return e
}

func badMessage(format string, args ...any) *Error {
	return newErr(ErrBadMessage, ErrTypeBadRequest, CodeBadRequestLen, format, args...)
}

// relabel turns a generic length error found inside an action, instruction or
// match into the error class of that container.
func relabel(err error, sentinel error, typ, code uint16) error {
	if err == nil {
		// Every decoded match comes here; errors.As would allocate.
		return nil
	}
	var e *Error
	if errors.As(err, &e) && e.Sentinel == ErrBadLength {
		return &Error{Type: typ, Code: code, Sentinel: sentinel, Detail: e.Detail, Item: e.Item}
	}
	return err
}
