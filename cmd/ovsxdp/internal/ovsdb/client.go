package ovsdb

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"time"
)

// Options tune a Client. Zero values take the defaults.
type Options struct {
	Logger *slog.Logger
	// MaxMessageSize bounds one received message (default 64 MiB).
	MaxMessageSize int
	// InactivityProbe: after this long without a message from the server
	// the client sends an echo, and when nothing comes for as long again
	// after the echo it drops the connection and reconnects (default 5 s,
	// as ovs-vswitchd's; negative disables the probe).
	InactivityProbe time.Duration
	// WriteTimeout bounds one write (default 10 s).
	WriteTimeout time.Duration
	// DialTimeout bounds one connection attempt (default 5 s).
	DialTimeout time.Duration
	// ReconnectMin and ReconnectMax bound the backoff between connection
	// attempts, which doubles from the first to the second (defaults 250 ms
	// and 8 s).
	ReconnectMin, ReconnectMax time.Duration
	// Trace, if set, sees every whole message received (received=true) or
	// sent, for debugging. It runs on the connection's goroutines and must
	// not keep raw.
	Trace func(received bool, raw []byte)
}

func (o *Options) setDefaults() {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.MaxMessageSize <= 0 {
		o.MaxMessageSize = 64 << 20
	}
	if o.InactivityProbe == 0 {
		o.InactivityProbe = 5 * time.Second
	}
	if o.WriteTimeout <= 0 {
		o.WriteTimeout = 10 * time.Second
	}
	if o.DialTimeout <= 0 {
		o.DialTimeout = 5 * time.Second
	}
	if o.ReconnectMin <= 0 {
		o.ReconnectMin = 250 * time.Millisecond
	}
	if o.ReconnectMax < o.ReconnectMin {
		o.ReconnectMax = max(8*time.Second, o.ReconnectMin)
	}
}

// Client is a session with one OVSDB server that survives the server's
// restarts: it reconnects with backoff and resyncs its monitors.
type Client struct {
	remote        string
	network, addr string
	opts          Options
	log           *slog.Logger
	cnt           counters

	ctx    context.Context // ends at Close
	cancel context.CancelFunc
	done   chan struct{} // closed when the reconnect loop exits

	mu       sync.Mutex // guards the fields below
	conn     *conn      // nil while disconnected
	monitors map[string]*Replica
	nextMon  int
}

// Dial connects to remote ("unix:PATH" or "tcp:HOST:PORT"). The first
// connection must succeed; after that the client reconnects by itself
// until Close.
func Dial(ctx context.Context, remote string, opts Options) (*Client, error) {
	network, addr, err := parseRemote(remote)
	if err != nil {
		return nil, err
	}
	opts.setDefaults()
	c := &Client{remote: remote, network: network, addr: addr, opts: opts, log: opts.Logger,
		monitors: make(map[string]*Replica), done: make(chan struct{})}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	cn, err := c.dial(ctx)
	if err != nil {
		c.cancel()
		return nil, err
	}
	c.conn = cn
	go c.run(cn)
	return c, nil
}

func (c *Client) dial(ctx context.Context) (*conn, error) {
	ctx, cancel := context.WithTimeout(ctx, c.opts.DialTimeout)
	defer cancel()
	var d net.Dialer
	nc, err := d.DialContext(ctx, c.network, c.addr)
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", c.remote, err)
	}
	c.cnt.connects.Add(1)
	return newConn(nc, c.log, &c.cnt, &c.opts, c.notify), nil
}

// run waits for the connection to end and reconnects, until Close.
func (c *Client) run(cn *conn) {
	defer close(c.done)
	for {
		select {
		case <-cn.closed:
		case <-c.ctx.Done():
			cn.close(ErrClosed)
			<-cn.done
			return
		}
		<-cn.done
		c.log.Warn("ovsdb: connection lost, reconnecting", "remote", c.remote, "err", cn.Err())
		c.mu.Lock()
		c.conn = nil
		c.mu.Unlock()
		backoff := c.opts.ReconnectMin
		for {
			t := time.NewTimer(backoff)
			select {
			case <-t.C:
			case <-c.ctx.Done():
				t.Stop()
				return
			}
			next, err := c.reconnect()
			if err == nil {
				cn = next
				break
			}
			c.log.Info("ovsdb: reconnect failed", "remote", c.remote, "err", err, "retry_in", backoff)
			backoff = min(2*backoff, c.opts.ReconnectMax)
		}
		c.log.Info("ovsdb: reconnected", "remote", c.remote)
	}
}

// reconnect dials and resubscribes every monitor; the client's connection
// is published only once every replica has resynced.
func (c *Client) reconnect() (*conn, error) {
	cn, err := c.dial(c.ctx)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	reps := make([]*Replica, 0, len(c.monitors))
	for _, r := range c.monitors {
		reps = append(reps, r)
	}
	c.mu.Unlock()
	ctx, cancel := context.WithTimeout(c.ctx, 30*time.Second)
	defer cancel()
	for _, r := range reps {
		if err := c.subscribe(ctx, cn, r); err != nil {
			cn.close(err)
			<-cn.done
			return nil, err
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ctx.Err() != nil {
		cn.close(ErrClosed)
		return nil, ErrClosed
	}
	c.conn = cn
	return cn, nil
}

// current returns the live connection. A connection that has closed but
// that run has not yet let go of is no connection either: a call made
// once Connected says false fails as not connected, whichever goroutine
// gets there first.
func (c *Client) current() (*conn, error) {
	if c.ctx.Err() != nil {
		return nil, ErrClosed
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.conn == nil {
		return nil, ErrNotConnected
	}
	if err := c.conn.Err(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrNotConnected, err)
	}
	return c.conn, nil
}

// Connected reports whether the client has a live, resynced connection.
func (c *Client) Connected() bool {
	_, err := c.current()
	return err == nil
}

// Stats returns the client's counters.
func (c *Client) Stats() Stats { return c.cnt.snapshot() }

// Close cancels the monitors (monitor_cancel), closes the connection and
// stops reconnecting. It waits for the client's goroutines to exit.
func (c *Client) Close() error {
	if c.ctx.Err() != nil {
		<-c.done
		return nil
	}
	c.mu.Lock()
	cn := c.conn
	reps := make([]*Replica, 0, len(c.monitors))
	for _, r := range c.monitors {
		reps = append(reps, r)
	}
	c.mu.Unlock()
	if cn != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		for _, r := range reps {
			if _, err := cn.call(ctx, "monitor_cancel", []json.RawMessage{json.RawMessage(r.id)}); err != nil {
				c.log.Debug("ovsdb: monitor_cancel at close", "db", r.db, "err", err)
				break
			}
		}
		cancel()
	}
	c.cancel()
	<-c.done
	return nil
}

// ListDbs returns the databases the server holds.
func (c *Client) ListDbs(ctx context.Context) ([]string, error) {
	cn, err := c.current()
	if err != nil {
		return nil, fmt.Errorf("list_dbs: %w", err)
	}
	raw, err := cn.call(ctx, "list_dbs", []any{})
	if err != nil {
		return nil, err
	}
	var dbs []string
	if err := json.Unmarshal(raw, &dbs); err != nil {
		return nil, fmt.Errorf("%w: list_dbs result: %w", ErrProtocol, err)
	}
	return dbs, nil
}

// GetSchema returns a database's schema.
func (c *Client) GetSchema(ctx context.Context, db string) (*Schema, error) {
	cn, err := c.current()
	if err != nil {
		return nil, fmt.Errorf("get_schema: %w", err)
	}
	return getSchema(ctx, cn, db)
}

func getSchema(ctx context.Context, cn *conn, db string) (*Schema, error) {
	raw, err := cn.call(ctx, "get_schema", []string{db})
	if err != nil {
		return nil, err
	}
	return ParseSchema(raw)
}

// Transact runs operations as one transaction on db. When an operation
// fails the error is a *TransactError (errors.Is(err, ErrTransaction)) and
// the results are returned too.
func (c *Client) Transact(ctx context.Context, db string, ops ...Operation) ([]OpResult, error) {
	cn, err := c.current()
	if err != nil {
		return nil, fmt.Errorf("transact: %w", err)
	}
	params := make([]any, 0, len(ops)+1)
	params = append(params, db)
	for _, op := range ops {
		params = append(params, op)
	}
	raw, err := cn.call(ctx, "transact", params)
	if err != nil {
		return nil, err
	}
	return parseTransactResult(raw, ops)
}

// MonitorRequest says what to monitor.
type MonitorRequest struct {
	DB string
	// Tables maps each monitored table to the columns to monitor (all of
	// them when the list is empty).
	Tables map[string][]string
	// Cond uses monitor_cond and update2 notifications (column diffs)
	// instead of monitor and update.
	Cond bool
	// OnChange, if set, receives each applied update's row changes, and
	// after a reconnection the changes that resync the replica. It runs on
	// the connection's reader goroutine: it must not block, and must not
	// wait for a reply from this client (hand such work to another
	// goroutine).
	OnChange func([]Event)
}

// Monitor starts monitoring and returns the replica, loaded with the
// initial contents. The monitor is renewed after every reconnection until
// Cancel or Close.
func (c *Client) Monitor(ctx context.Context, req MonitorRequest) (*Replica, error) {
	if len(req.Tables) == 0 {
		return nil, fmt.Errorf("monitor %s: no tables", req.DB)
	}
	cn, err := c.current()
	if err != nil {
		return nil, fmt.Errorf("monitor %s: %w", req.DB, err)
	}
	r := &Replica{db: req.DB, tables: req.Tables, cond: req.Cond, onChange: req.OnChange}
	c.mu.Lock()
	c.nextMon++
	id, _ := json.Marshal("ovsxdp-" + strconv.Itoa(c.nextMon))
	r.id = string(id)
	c.monitors[r.id] = r
	c.mu.Unlock()
	if err := c.subscribe(ctx, cn, r); err != nil {
		c.mu.Lock()
		delete(c.monitors, r.id)
		c.mu.Unlock()
		return nil, err
	}
	return r, nil
}

// Cancel stops a monitor (monitor_cancel). The replica keeps its last
// contents.
func (c *Client) Cancel(ctx context.Context, r *Replica) error {
	c.mu.Lock()
	_, ok := c.monitors[r.id]
	delete(c.monitors, r.id)
	c.mu.Unlock()
	if !ok {
		return nil
	}
	cn, err := c.current()
	if err != nil {
		return nil // nothing to cancel on the server
	}
	_, err = cn.call(ctx, "monitor_cancel", []json.RawMessage{json.RawMessage(r.id)})
	return err
}

// subscribe fetches the schema and sends the monitor request on cn; the
// reply's initial contents are applied on the reader goroutine before any
// later notification.
func (c *Client) subscribe(ctx context.Context, cn *conn, r *Replica) error {
	schema, err := getSchema(ctx, cn, r.db)
	if err != nil {
		return fmt.Errorf("monitor %s: %w", r.db, err)
	}
	if err := r.checkSchema(schema); err != nil {
		return err
	}
	method := "monitor"
	if r.cond {
		method = "monitor_cond"
	}
	params := []any{r.db, json.RawMessage(r.id), r.monitorParams()}
	cl, err := cn.start(method, params, func(m *Message) error {
		if m.IsError() {
			return nil // the waiter reports it
		}
		return r.applyInitial(schema, m.Result)
	})
	if err != nil {
		return err
	}
	_, err = cn.wait(ctx, cl)
	return err
}

// notify handles a notification on the reader goroutine.
func (c *Client) notify(m *Message) error {
	v2 := false
	switch m.Method {
	case "update":
	case "update2":
		v2 = true
	default:
		c.cnt.ignored.Add(1)
		c.log.Debug("ovsdb: ignoring notification", "method", m.Method)
		return nil
	}
	var params []json.RawMessage
	if err := json.Unmarshal(m.Params, &params); err != nil || len(params) != 2 {
		return fmt.Errorf("%w: %s params are not [monitor-id, updates]", ErrProtocol, m.Method)
	}
	id := string(params[0]) // compact: DecodeMessage compacted the params
	c.mu.Lock()
	r := c.monitors[id]
	c.mu.Unlock()
	if r == nil {
		c.cnt.ignored.Add(1)
		c.log.Debug("ovsdb: update for an unknown monitor", "id", truncate(id, 64))
		return nil
	}
	if r.cond != v2 {
		return fmt.Errorf("%w: %s for a monitor that expects the other form", ErrProtocol, m.Method)
	}
	return r.applyUpdate(params[1], v2)
}
