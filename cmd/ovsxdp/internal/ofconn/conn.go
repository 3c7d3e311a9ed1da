// Package ofconn serves OpenFlow connections for one bridge: the
// management socket (RUNDIR/BRIDGE.mgmt) that ovs-ofctl talks to. It owns
// the connection state machine (hello and version negotiation, echo,
// features, switch configuration, barrier, Nicira flow format and table-id
// switches, multipart splitting, error replies) and leaves what a message
// does to the bridge to a Bridge.
//
// Every connection has its own goroutine. Reads are bounded (one message
// of at most 64 KiB at a time), a peer that says nothing is probed with an
// echo request and dropped if it stays silent, and a peer that does not
// read its replies is dropped after a write timeout: no client can wedge
// the daemon, the poll threads or another connection.
package ofconn

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ovsxdp/ovsxdp/flow"
	"github.com/ovsxdp/ovsxdp/flow/ofconv"
	"github.com/ovsxdp/ovsxdp/flow/openflow"
)

// Versions are the OpenFlow versions ovsxdp speaks, oldest first.
var Versions = []uint8{openflow.Version10, openflow.Version13, openflow.Version14, openflow.Version15}

// Bridge is what a connection asks of the bridge it serves. Methods are
// called from connection goroutines, one message at a time per connection
// but concurrently across connections. An error that is an
// *openflow.Error becomes that error reply; any other error becomes
// OFPET_BAD_REQUEST/OFPBRC_EPERM.
type Bridge interface {
	// DatapathID is the bridge's datapath id.
	DatapathID() uint64
	// Ports describes the bridge's ports.
	Ports() []openflow.Port
	// FlowMod runs a flow mod of version v. The connection has already
	// resolved an OpenFlow 1.0 flow mod's table (0 for an add, all for
	// the others, unless NXT_FLOW_MOD_TABLE_ID put it in the command).
	// from is the request, for the flow monitors (monitor.go).
	FlowMod(v uint8, fm *openflow.FlowMod, from Origin) error
	// Flows answers a flow stats request.
	Flows(v uint8, req *openflow.FlowStatsRequest) ([]openflow.FlowStats, error)
	// Aggregate answers an aggregate stats request.
	Aggregate(v uint8, req *openflow.FlowStatsRequest) (*openflow.AggregateReply, error)
	// Tables answers a table stats request.
	Tables(v uint8) []openflow.TableStats
	// PortStats answers a port stats request (openflow.PortAny: all).
	PortStats(v uint8, port uint32) ([]openflow.PortStats, error)
	// PortMod changes a port's configuration. from is the request: the
	// port status of the change is not sent back to it before OpenFlow
	// 1.5 (PortModifiedBy).
	PortMod(v uint8, pm *openflow.PortMod, from Origin) error
	// PacketOut sends a packet through actions.
	PacketOut(v uint8, po *openflow.PacketOut) error
	// GroupMod runs a group mod of version v.
	GroupMod(v uint8, gm *openflow.GroupMod) error
	// GroupDesc describes the group with id id, or every group when id
	// is GroupAll.
	GroupDesc(v uint8, id uint32) ([]openflow.GroupDesc, error)
	// GroupStats reports the counters of the group with id id, or of
	// every group when id is GroupAll.
	GroupStats(v uint8, id uint32) ([]openflow.GroupStats, error)
}

// Checker is a Bridge that can tell whether it would take a flow mod or a
// group mod without running it. Bundled messages are checked with it when
// they are added (bundle.go); without it they are checked at commit only.
type Checker interface {
	// CheckFlowMod converts fm as FlowMod would, so that a bundled flow
	// mod is converted once, when it is added, as Open vSwitch decodes
	// it once then. An add may be put in adds (when not nil), in the
	// form the bridge's table keeps it, and reported added: it comes
	// back to CommitBundle as BundledMod.Adds. Otherwise the conversion
	// comes back as BundledMod.Flow. fm is the connection's, reused
	// once the call returns (openflow.FlowModDecoder): the bridge must
	// not keep it.
	CheckFlowMod(v uint8, fm *openflow.FlowMod, adds *flow.FlowBatch) (mod *ofconv.Mod, added bool, err error)
	CheckGroupMod(v uint8, gm *openflow.GroupMod) error
}

// PacketOutChecker is a Bridge that can tell whether it would take a
// packet out without running it: a bundled packet out is checked with it
// when it is added; without it, at commit only.
type PacketOutChecker interface {
	CheckPacketOut(v uint8, po *openflow.PacketOut) error
}

// FlowModBatcher is a Bridge that can run consecutive flow mods of one
// connection as one change of its tables (flowmods.go).
type FlowModBatcher interface {
	// FlowMods runs fms in order, each as FlowMod would run it, with
	// the effects of the earlier ones, and returns each one's error
	// (errs[i] is fms[i]'s; one failing does not stop the others). The
	// connection reads no other message until it returns, and every
	// flow mod is in effect then.
	FlowMods(v uint8, fms []*openflow.FlowMod, from []Origin) (errs []error)
}

// BundleCommitter is a Bridge that can commit an OpenFlow bundle
// (bundle.go): a bridge that is not one takes no bundles.
type BundleCommitter interface {
	// CommitBundle runs mods in order, each as FlowMod, GroupMod or
	// PortMod would run it, with the effects of the earlier ones, as
	// one change: lookups see all of them or none. When one fails (or
	// is a Refuse), none takes effect, and it returns that one's index
	// and error; an error that is no message's (the bridge is gone)
	// comes with index -1. A port mod is checked in its turn and
	// applied once the rest has taken effect. A packet out is
	// translated in its turn, with the effects of the earlier ones,
	// and sent, in order, once all have taken effect; none is sent
	// when the bundle fails.
	CommitBundle(v uint8, mods []BundledMod) (failed int, err error)
}

// BundledMod is one message of a bundle being committed.
type BundledMod struct {
	// Msg is an *openflow.FlowMod, *openflow.GroupMod,
	// *openflow.PortMod or *openflow.PacketOut; nil for a flow mod
	// that Flow holds converted, whose decoded form the bundle did not
	// keep.
	Msg openflow.Message
	// From is the message, for the flow monitors.
	From Origin
	// Refuse, if set, is the error the message fails with when its
	// turn comes, whatever it is.
	Refuse error
	// Flow, if set, is a flow mod's conversion by CheckFlowMod when it
	// was added: it is run as it is, not converted again. The bridge
	// may drop it (set it to nil) once it has run it, so that the
	// memory of a large bundle's conversions is free as the commit
	// goes.
	Flow *ofconv.Mod
	// Adds, if set, holds the flow add this message is, as CheckFlowMod
	// put it there: it is the first flow of Adds that the commit has not
	// installed yet (flow.TableTxn.AddBatch). The adds of a bundle share
	// one batch, in their order.
	Adds *flow.FlowBatch
}

// GroupAll is OFPG_ALL: every group, in a group request.
const GroupAll uint32 = 0xfffffffc

// Config configures a Server.
type Config struct {
	// Desc is what a desc stats request answers.
	Desc   openflow.DescReply
	Logger *slog.Logger
	// OnChange, if set, is called (with no lock held) when a connection
	// that may take asynchronous messages comes, goes or changes its
	// settings: Wants may answer differently.
	OnChange func()
}

// Limits of a connection; a Server copies them (tests change its copy).
const (
	// maxConns bounds the connections a listener holds open at once.
	defaultMaxConns = 64
	// helloTimeout bounds the wait for the peer's hello.
	defaultHelloTimeout = 10 * time.Second
	// probeInterval is how long a connection may be silent before it is
	// sent an echo request; it is dropped when it stays silent as long
	// again.
	defaultProbeInterval = 60 * time.Second
	// writeTimeout bounds the sending of one message.
	defaultWriteTimeout = 10 * time.Second
)

// OpenFlow error codes the connection replies with.
const (
	codeBadRequestEPerm uint16 = 5  // OFPBRC_EPERM
	codeHelloEPerm      uint16 = 1  // OFPHFC_EPERM
	codeBadReqIsSlave   uint16 = 10 // OFPBRC_IS_SLAVE
	codeBadReqBadPort   uint16 = 11 // OFPBRC_BAD_PORT
)

// Server serves OpenFlow connections for a Bridge.
type Server struct {
	br  Bridge
	cfg Config
	log *slog.Logger
	// Limits: the package's defaults but for tests.
	maxConns                                  int
	helloTimeout, probeInterval, writeTimeout time.Duration

	asyncSent, asyncDropped atomic.Uint64
	id                      [16]byte     // the bridge's id in continuations (resume.go)
	mons                    monitoring   // flow monitors (monitor.go)
	tableCfg                tableConfigs // the tables' settings (tablemod.go)
	acct                    accounting   // messages received and refused (rejections.go)

	mu     sync.Mutex // protects the fields below
	ln     net.Listener
	conns  map[net.Conn]struct{}
	live   map[*conn]struct{} // connections past hello (async.go)
	closed bool
	wg     sync.WaitGroup
}

// NewServer returns a server for br.
func NewServer(br Bridge, cfg Config) *Server {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	s := &Server{br: br, cfg: cfg, log: cfg.Logger, conns: map[net.Conn]struct{}{}, live: map[*conn]struct{}{},
		maxConns: defaultMaxConns, helloTimeout: defaultHelloTimeout, probeInterval: defaultProbeInterval, writeTimeout: defaultWriteTimeout}
	rand.Read(s.id[:]) // never fails
	return s
}

// Serve accepts connections on ln until Close, and returns nil then.
func (s *Server) Serve(ln net.Listener) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ln.Close()
	}
	s.ln = ln
	s.mu.Unlock()
	for {
		c, err := ln.Accept()
		if err != nil {
			s.mu.Lock()
			closed := s.closed
			s.mu.Unlock()
			if closed {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return fmt.Errorf("openflow listener: accept: %w", err)
		}
		if !s.track(c) {
			continue
		}
		go func() {
			defer s.wg.Done()
			defer s.untrack(c)
			s.serve(c, Service)
		}()
	}
}

// track admits c, or closes it when the server is closed or full.
func (s *Server) track(c net.Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || len(s.conns) >= s.maxConns {
		if !s.closed {
			s.log.Warn("openflow: connection refused: too many connections", "limit", s.maxConns)
		}
		c.Close()
		return false
	}
	s.conns[c] = struct{}{}
	s.wg.Add(1)
	return true
}

func (s *Server) untrack(c net.Conn) {
	c.Close()
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
}

// Close stops accepting, closes every connection and waits for their
// goroutines.
func (s *Server) Close() error {
	err := s.Stop()
	s.Wait()
	return err
}

// Stop closes the listener (which removes its socket) and every
// connection, without waiting for the connections' goroutines: one may be
// waiting for a lock its caller holds. Wait waits for them.
func (s *Server) Stop() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	var err error
	if s.ln != nil {
		err = s.ln.Close()
		s.ln = nil
	}
	for c := range s.conns {
		c.Close()
	}
	return err
}

// Disconnect closes every connection and keeps listening: a controller
// dials again, as after Open vSwitch's ofproto_reconnect_controllers.
func (s *Server) Disconnect() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		c.Close()
	}
}

// Wait waits until every connection's goroutine has ended (after Stop).
func (s *Server) Wait() { s.wg.Wait() }

// ServeConn runs the protocol on c until the peer goes away or breaks it,
// and closes c. It is what each accepted connection runs.
func (s *Server) ServeConn(c net.Conn) {
	defer c.Close()
	s.serve(c, Service)
}

// ControllerOptions are a controller connection's settings.
type ControllerOptions struct {
	// Probe is the inactivity probe interval: a connection silent that
	// long is sent an echo request, and dropped when it stays silent as
	// long again. Zero: the server's default; negative: no probes.
	Probe time.Duration
	// Up, if set, is called once the version is negotiated.
	Up func(version uint8)
}

// ServeController runs the protocol on a controller's connection (kind
// Primary) as ServeConn does. It returns when the connection ends, or at
// once when the server is closed.
func (s *Server) ServeController(c net.Conn, opts ControllerOptions) {
	if !s.track(c) {
		return
	}
	defer s.wg.Done()
	defer s.untrack(c)
	s.serveOpts(c, Primary, opts)
}

// ServePrimary accepts controller connections (kind Primary) on ln, as
// a passive ptcp: or punix: controller, until ln is closed; it returns
// the error that ended Accept. The caller owns ln.
func (s *Server) ServePrimary(ln net.Listener, opts ControllerOptions) error {
	for {
		c, err := ln.Accept()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return err
		}
		if !s.track(c) {
			continue
		}
		go func() {
			defer s.wg.Done()
			defer s.untrack(c)
			s.serveOpts(c, Primary, opts)
		}()
	}
}

// conn is one connection's state. It belongs to its goroutine.
type conn struct {
	s   *Server
	nc  net.Conn
	log *slog.Logger
	r   *openflow.Reader

	version     uint8 // negotiated; 0 before hello
	kind        Kind
	tableID     bool // NXT_FLOW_MOD_TABLE_ID is on
	flowFormat  uint32
	config      openflow.SwitchConfig
	role        uint32
	generation  uint64
	probeSentAt time.Time
	xid         uint32

	// Asynchronous messages (async.go).
	pinFormat    uint32     // NXT_SET_PACKET_IN_FORMAT
	controllerID uint16     // NXT_SET_CONTROLLER_ID
	asyncMasks   asyncMasks // the set async configuration (asyncconfig.go)
	asyncSet     bool       // one was set: the version's default until then
	async        asyncState
	mon          monitorState            // flow monitors (monitor.go)
	bundles      map[uint32]*bundleState // open bundles, by id (bundle.go)
	adds         []byte                  // the chunk bundled adds are copied into (bundle.go)
	dec          openflow.FlowModDecoder // decodes bundled flow mods (bundle.go)
	br           *bufio.Reader           // what r reads from: what is buffered
	flowMods     flowModBatch            // flow mods read, not yet run (flowmods.go)
	up           func(uint8)
	probe        time.Duration // ControllerOptions.Probe
	// wmu serializes writes: replies from the connection's goroutine,
	// asynchronous messages from its writer.
	wmu sync.Mutex
}

// readBuffer is the size of a connection's read buffer.
const readBuffer = 64 << 10

// errClose ends a connection after its error reply was sent.
var errClose = errors.New("connection closed by protocol error")

func (s *Server) serve(nc net.Conn, kind Kind) { s.serveOpts(nc, kind, ControllerOptions{}) }

func (s *Server) serveOpts(nc net.Conn, kind Kind, opts ControllerOptions) {
	// A buffered read takes what the peer sent in one system call: a
	// flow mod and the barrier after it, or a controller's burst.
	br := bufio.NewReaderSize(nc, readBuffer)
	c := &conn{s: s, nc: nc, log: s.log, r: openflow.NewReader(br, openflow.MaxMessageLen), br: br,
		role: openflow.RoleEqual, kind: kind, up: opts.Up, probe: opts.Probe}
	if kind == Primary {
		// As Open vSwitch: a controller's miss_send_len is 128, a
		// management connection's 0 (no asynchronous messages).
		c.config.MissSendLen = 128
	}
	defer c.stopAsync()
	defer c.dropMonitors()
	defer func() {
		if p := recover(); p != nil {
			c.log.Error("openflow: connection handler panicked; connection closed", "panic", p, "stack", string(debug.Stack()))
		}
	}()
	hello, _ := openflow.NewHello(Versions...)
	if err := c.send(openflow.Version15, 0, hello); err != nil {
		return
	}
	for {
		if err := c.readOne(); err != nil {
			if !errors.Is(err, io.EOF) && !errors.Is(err, errClose) && !errors.Is(err, net.ErrClosed) {
				c.log.Debug("openflow: connection ended", "err", err)
			}
			return
		}
	}
}

// readOne reads and handles one message. A flow mod may be held in the
// connection's batch until the next message that is not one, or until
// no whole message is left buffered (flowmods.go).
func (c *conn) readOne() error {
	if !c.nextBuffered() {
		// Nothing more to read without waiting: what was read is run
		// before the wait, as if it had been run message by message.
		c.runFlowMods()
	}
	timeout := c.s.probeInterval
	if c.probe != 0 {
		timeout = c.probe
	}
	if c.version == 0 {
		timeout = c.s.helloTimeout
	}
	if timeout < 0 {
		c.nc.SetReadDeadline(time.Time{})
	} else {
		c.nc.SetReadDeadline(time.Now().Add(timeout))
	}
	b, err := c.r.ReadMessage()
	if err != nil {
		c.runFlowMods()
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() && c.version != 0 && c.probeSentAt.IsZero() {
			// Silent for a probe interval: ask whether the peer is there.
			c.probeSentAt = time.Now()
			if err := c.send(c.version, c.nextXid(), &openflow.EchoRequest{}); err != nil {
				return err
			}
			return nil
		}
		var oe *openflow.Error
		if errors.As(err, &oe) && len(b) >= openflow.HeaderLen {
			// A bad length in the header: the stream cannot be
			// resynchronised. Answer and close.
			c.s.acct.countReceived(b)
			h, _ := openflow.ParseHeader(b)
			c.replyError(h, b, oe)
			return errClose
		}
		return err
	}
	c.probeSentAt = time.Time{}
	c.s.acct.countReceived(b)
	batching := c.batching()
	if batching {
		// b is the reader's buffer, which the next message overwrites;
		// a flow mod held in the batch keeps its own copy (the decoded
		// message may point into it).
		b = bytes.Clone(b)
	}
	if c.isBundleAdd(b) {
		// An add goes to its bundle without the whole message being
		// decoded (copied) first: bundleAdd copies what it keeps of
		// it, once.
		c.runFlowMods()
		h, _ := openflow.ParseHeader(b)
		return c.runBundle(h, typeBundleAdd, b[openflow.HeaderLen:], b)
	}
	h, m, err := openflow.Decode(b)
	if c.version == 0 {
		return c.hello(h, m, b, err)
	}
	if fm, ok := m.(*openflow.FlowMod); ok && err == nil && batching && h.Version == c.version {
		return c.holdFlowMod(h, fm, b)
	}
	// Any other message comes after every flow mod before it.
	c.runFlowMods()
	if h.Version != c.version && !(h.Type == 0 && err == nil) {
		c.replyError(h, b, &openflow.Error{Type: openflow.ErrTypeBadRequest, Code: openflow.CodeBadRequestVersion, Sentinel: openflow.ErrBadVersion,
			Detail: fmt.Sprintf("version 0x%02x on a 0x%02x connection", h.Version, c.version)})
		return nil
	}
	if err != nil {
		c.replyError(h, b, err)
		return nil
	}
	return c.handle(h, m, b)
}

// isBundleAdd reports whether b is an OFPT_BUNDLE_ADD_MESSAGE that handle
// would pass to its bundle: a message of the connection's version, 1.4 or
// later (openflow.Decode leaves its type undecoded), to a bridge that
// takes bundles.
func (c *conn) isBundleAdd(b []byte) bool {
	if c.version < openflow.Version14 || len(b) < openflow.HeaderLen || b[0] != c.version || b[1] != typeBundleAdd {
		return false
	}
	_, ok := c.s.br.(BundleCommitter)
	return ok
}

// hello negotiates the version from the peer's first message.
func (c *conn) hello(h openflow.Header, m openflow.Message, b []byte, err error) error {
	hm, ok := m.(*openflow.Hello)
	if err != nil || !ok {
		// As Open vSwitch 3.1: no error reply, the connection is dropped
		// (its log says "received message while expecting hello"). The
		// rejection is still counted, under the hello failure.
		c.s.acct.countRejected(b, openflow.ErrTypeHelloFailed, codeHelloEPerm, err)
		c.log.Warn("openflow: received message while expecting hello", "message", MessageName(b))
		return errClose
	}
	v, err := openflow.Negotiate(Versions, h.Version, hm)
	if err != nil {
		var oe *openflow.Error
		errors.As(err, &oe)
		em := &openflow.ErrorMsg{Type: openflow.ErrTypeHelloFailed, Code: openflow.CodeHelloIncompatible,
			Data: []byte(fmt.Sprintf("We support versions 0x01, 0x04 to 0x06, you support %s", peerVersions(h.Version, hm)))}
		c.s.acct.countRejected(b, em.Type, em.Code, err)
		c.sendError(min(h.Version, openflow.Version15), h.Xid, em)
		if oe == nil {
			return err
		}
		return errClose
	}
	c.version = v
	c.log.Debug("openflow: version negotiated", "version", v)
	c.startAsync()
	if c.up != nil {
		c.up(v)
	}
	return nil
}

func peerVersions(v uint8, hm *openflow.Hello) string {
	if vs, ok := hm.VersionBitmap(); ok {
		return fmt.Sprint(vs)
	}
	return fmt.Sprintf("0x%02x", v)
}

func (c *conn) nextXid() uint32 {
	c.xid++
	return c.xid
}

// send encodes and writes one message within the write timeout.
func (c *conn) send(v uint8, xid uint32, m openflow.Message) error {
	b, err := openflow.Encode(v, xid, m)
	if err != nil {
		c.log.Error("openflow: cannot encode reply", "type", fmt.Sprintf("%T", m), "err", err)
		return c.sendError(v, xid, &openflow.ErrorMsg{Type: openflow.ErrTypeBadRequest, Code: codeBadRequestEPerm})
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.nc.SetWriteDeadline(time.Now().Add(c.s.writeTimeout))
	if _, err := c.nc.Write(b); err != nil {
		return fmt.Errorf("openflow: write: %w", err)
	}
	return nil
}

// sendError sends an error. Its data is cut, if need be, for the error
// to fit the longest message (a request of 65,535 bytes does not fit
// after an error's header), as Open vSwitch cuts it.
func (c *conn) sendError(v uint8, xid uint32, em *openflow.ErrorMsg) error {
	if !openflow.SupportedVersion(v) {
		v = openflow.Version10
	}
	b, err := encodeError(v, xid, em)
	if err != nil {
		return err
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.nc.SetWriteDeadline(time.Now().Add(c.s.writeTimeout))
	_, err = c.nc.Write(b)
	return err
}

// encodeError encodes em, its data cut to fit the longest message.
func encodeError(v uint8, xid uint32, em *openflow.ErrorMsg) ([]byte, error) {
	head := *em
	head.Data = nil
	h, err := openflow.Encode(v, xid, &head)
	if err != nil {
		return nil, err
	}
	if room := openflow.MaxMessageLen - len(h); len(em.Data) > room {
		cut := *em
		cut.Data = em.Data[:max(room, 0)]
		em = &cut
	}
	return openflow.Encode(v, xid, em)
}

// replyError answers the message b (header h) with the error err stands
// for.
func (c *conn) replyError(h openflow.Header, b []byte, err error) {
	c.replyErrorAs(h, b, b, err)
}

// replyErrorAs answers the message b (header h) with the error err stands
// for, and counts it as a refusal of the message acct (b, or the message
// inside a bundle add).
func (c *conn) replyErrorAs(h openflow.Header, b, acct []byte, err error) {
	typ, code := openflow.ErrTypeBadRequest, codeBadRequestEPerm
	var oe *openflow.Error
	if errors.As(err, &oe) {
		typ, code = oe.Type, oe.Code
	}
	v := c.version
	if v == 0 {
		v = h.Version
	}
	c.s.acct.countRejected(acct, typ, code, err)
	c.log.Debug("openflow: error reply", "msg", MessageName(acct), "type", typ, "code", code, "err", err)
	c.sendError(v, h.Xid, errorMsg(v, typ, code, b))
}
