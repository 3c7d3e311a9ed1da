package daemon

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"sort"
	"strconv"
	"strings"

	"github.com/ovsxdp/ovsxdp/datapath"
	"github.com/ovsxdp/ovsxdp/vport"
)

// CheckLoopback returns an error unless addr, the value of the option
// named flag, is HOST:PORT with HOST a loopback address (or "localhost"):
// the metrics and profiling endpoints have no authentication, so they
// never listen beyond the host.
func CheckLoopback(flag, addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%s %q: %w", flag, addr, err)
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		return fmt.Errorf("%s %q: port %q is not a number from 0 to 65535", flag, addr, port)
	}
	if host == "localhost" {
		return nil
	}
	ip := net.ParseIP(host)
	if ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("%s %q: %q is not a loopback address (the endpoint has no authentication; use 127.0.0.1 or [::1])", flag, addr, host)
	}
	return nil
}

// RegisterMetrics serves /metrics (the Prometheus text format) on mux.
func (d *Daemon) RegisterMetrics(mux *http.ServeMux) {
	mux.HandleFunc("/metrics", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		bw := bufio.NewWriter(w)
		d.writeMetrics(bw)
		bw.Flush()
	})
}

// RegisterPprof serves the Go profiler under /debug/pprof/ on mux. The
// daemon serves it only when asked to (--pprof): profiles show the
// process's memory and command line.
func RegisterPprof(mux *http.ServeMux) {
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
}

// metric is one metric family being written.
type metric struct {
	name, help, typ string
	samples         []string
}

func (m *metric) add(value string, labels ...string) {
	var b strings.Builder
	b.WriteString(m.name)
	if len(labels) > 0 {
		b.WriteByte('{')
		for i := 0; i+1 < len(labels); i += 2 {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString(labels[i] + `="` + escapeLabel(labels[i+1]) + `"`)
		}
		b.WriteByte('}')
	}
	b.WriteString(" " + value)
	m.samples = append(m.samples, b.String())
}

func (m *metric) addUint(v uint64, labels ...string) { m.add(strconv.FormatUint(v, 10), labels...) }

// escapeLabel escapes a label value for the text format.
func escapeLabel(s string) string {
	return strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`).Replace(s)
}

// portRow is one port's counters, or the removed ports' row.
type portRow struct {
	name string
	s    datapath.PortStats
	vs   vport.Stats
}

// writeMetrics writes every metric in the Prometheus text exposition
// format. It reads the bridges from the published view and the counters
// atomically: it never waits for a command.
func (d *Daemon) writeMetrics(w *bufio.Writer) {
	newMetric := func(name, typ, help string) *metric { return &metric{name: name, typ: typ, help: help} }
	var (
		rxPackets = newMetric("ovsxdp_port_rx_packets_total", "counter", "Packets received on the port.")
		rxBytes   = newMetric("ovsxdp_port_rx_bytes_total", "counter", "Bytes received on the port.")
		txPackets = newMetric("ovsxdp_port_tx_packets_total", "counter", "Packets transmitted on the port.")
		txBytes   = newMetric("ovsxdp_port_tx_bytes_total", "counter", "Bytes transmitted on the port.")
		drops     = newMetric("ovsxdp_port_drops_total", "counter", "Packets received on the port that the datapath dropped (or copies of them), by reason.")
		txDrops   = newMetric("ovsxdp_port_tx_drops_total", "counter", "Packet copies sent to the port that were dropped, by reason.")
		held      = newMetric("ovsxdp_port_held_packets", "gauge", "Packets received on the port that are held for reassembly (fragments), their fate not yet decided.")
		devDrops  = newMetric("ovsxdp_port_device_rx_drops_total", "counter", "Frames the port dropped on receive before the datapath saw them, by reason.")
		pmdPkts   = newMetric("ovsxdp_pmd_packets_total", "counter", "Packets received by the poll thread.")
		pmdEMC    = newMetric("ovsxdp_pmd_emc_hits_total", "counter", "Exact-match cache hits.")
		pmdMF     = newMetric("ovsxdp_pmd_megaflow_hits_total", "counter", "Megaflow classifier hits.")
		pmdUpcall = newMetric("ovsxdp_pmd_upcalls_total", "counter", "Cache misses looked up in the rule table (upcalls).")
		pmdLost   = newMetric("ovsxdp_pmd_malformed_total", "counter", "Malformed frames that were not classified.")
		pmdBatch  = newMetric("ovsxdp_pmd_batches_total", "counter", "Non-empty receive batches.")
		pmdBusy   = newMetric("ovsxdp_pmd_busy_seconds_total", "counter", "Time the poll thread spent processing batches.")
		pmdIdle   = newMetric("ovsxdp_pmd_idle_seconds_total", "counter", "Time the poll thread spent polling empty queues or sleeping.")
		pmdGSO    = newMetric("ovsxdp_pmd_gso_packets_total", "counter", "GSO packets that runs of TCP segments or UDP datagrams were sent in.")
		pmdGSOSeg = newMetric("ovsxdp_pmd_gso_segments_total", "counter", "TCP segments and UDP datagrams sent inside GSO packets.")
		pmdGSOErr = newMetric("ovsxdp_pmd_gso_refused_total", "counter", "GSO packets a port refused; their segments were sent one by one.")
		pmdSpins  = newMetric("ovsxdp_pmd_spins_given_up_total", "counter", "Times an adaptive poll thread, polling on after its last packet, slept early because other threads took its CPU.")
		lockups   = newMetric("ovsxdp_lockups_total", "counter", "Soft lockups of poll threads that the watchdog detected.")
		spinLocks = newMetric("ovsxdp_lockups_spinning_total", "counter", "Soft lockups that caught a poll thread spinning in output's tx queue loop (the others are batches that took long for another reason, such as a descheduled thread).")
		flows     = newMetric("ovsxdp_flows", "gauge", "Rules in the bridge's OpenFlow table.")
		ports     = newMetric("ovsxdp_ports", "gauge", "Ports on the bridge.")
		ofRecv    = newMetric("ovsxdp_openflow_received_total", "counter", "OpenFlow messages the bridge's channel received, by message type.")
		ofErrors  = newMetric("ovsxdp_openflow_errors_total", "counter", "OpenFlow error replies the bridge's channel sent, by refused message type, error and refused item.")
		ctConns   = newMetric("ovsxdp_conntrack_connections", "gauge", "Tracked connections, by protocol and state (TCP: as dump-conntrack prints it; others: FIRST, MULTIPLE, BIDIR or REPLY).")
		ctMax     = newMetric("ovsxdp_conntrack_max_connections", "gauge", "The most connections the tracker holds (dpctl/ct-get-maxconns).")
		ctEvents  = newMetric("ovsxdp_conntrack_events_total", "counter", "Tracker events: commits refused because the table (full) or the zone (zone-full) was at its limit, commits whose NAT found no free tuple (nat-exhausted), packets found invalid (invalid) and connections that timed out (expired).")
		ctFrags   = newMetric("ovsxdp_conntrack_fragments_held", "gauge", "IPv4 and IPv6 fragments held for reassembly (dpctl/ipf-get-status's num frag).")
	)
	if d.defrag != nil {
		ctFrags.addUint(uint64(d.defrag.Held()))
	}
	if d.ct != nil {
		for _, sc := range d.ct.StateCounts(datapath.ConntrackNow()) {
			ctConns.addUint(uint64(sc.Count), "proto", sc.Proto, "state", sc.State)
		}
		ctMax.addUint(uint64(d.ct.MaxConns()))
		cs := d.ct.Counters()
		ctEvents.addUint(cs.Full, "event", "full")
		ctEvents.addUint(cs.ZoneFull, "event", "zone-full")
		ctEvents.addUint(cs.NATExhausted, "event", "nat-exhausted")
		ctEvents.addUint(cs.Invalid, "event", "invalid")
		ctEvents.addUint(cs.Expired, "event", "expired")
	}
	for _, b := range *d.view.Load() {
		br := b.name
		rows := make([]portRow, 0, len(b.dp.Ports())+1)
		for _, p := range b.dp.Ports() {
			rows = append(rows, portRow{p.Name, p.Stats(), p.VPort().Stats()})
		}
		// The ports removed so far, in one row, keep the bridge's totals whole.
		if r := b.dp.RemovedStats(); r.Ports > 0 {
			rows = append(rows, portRow{datapath.RemovedPortsName, r.Stats, r.Device})
		}
		for _, row := range rows {
			s, vs, name := row.s, row.vs, row.name
			rxPackets.addUint(s.RxPackets, "bridge", br, "port", name)
			rxBytes.addUint(s.RxBytes, "bridge", br, "port", name)
			txPackets.addUint(s.TxPackets, "bridge", br, "port", name)
			txBytes.addUint(s.TxBytes, "bridge", br, "port", name)
			held.addUint(s.Held, "bridge", br, "port", name)
			for _, dd := range vs.RxDrops() {
				devDrops.addUint(dd.Count, "bridge", br, "port", name, "reason", dd.Reason)
			}
			for r := range datapath.NumDropReasons {
				reason := datapath.DropReason(r).String()
				drops.addUint(s.Drops[r], "bridge", br, "port", name, "reason", reason)
				txDrops.addUint(s.TxDrops[r], "bridge", br, "port", name, "reason", reason)
			}
		}
		for _, s := range b.dp.PMDStats() {
			id := strconv.Itoa(s.ID)
			pmdPkts.addUint(s.Packets, "bridge", br, "pmd", id)
			pmdEMC.addUint(s.EMCHits, "bridge", br, "pmd", id)
			pmdMF.addUint(s.MegaflowHit, "bridge", br, "pmd", id)
			pmdUpcall.addUint(s.Upcalls, "bridge", br, "pmd", id)
			pmdLost.addUint(s.Lost, "bridge", br, "pmd", id)
			pmdBatch.addUint(s.Batches, "bridge", br, "pmd", id)
			pmdBusy.add(strconv.FormatFloat(s.Busy.Seconds(), 'g', -1, 64), "bridge", br, "pmd", id)
			pmdIdle.add(strconv.FormatFloat(s.Idle.Seconds(), 'g', -1, 64), "bridge", br, "pmd", id)
			pmdGSO.addUint(s.GSOPackets, "bridge", br, "pmd", id)
			pmdGSOSeg.addUint(s.GSOSegments, "bridge", br, "pmd", id)
			pmdGSOErr.addUint(s.GSOFailed, "bridge", br, "pmd", id)
			pmdSpins.addUint(s.SpinsGivenUp, "bridge", br, "pmd", id)
		}
		_, total := b.dp.Lockups()
		lockups.addUint(total, "bridge", br)
		spinLocks.addUint(b.dp.SpinningLockups(), "bridge", br)
		flows.addUint(uint64(b.dp.Table().Len()), "bridge", br)
		ports.addUint(uint64(len(b.dp.Ports())), "bridge", br)
		if srv := d.ofServer(b); srv != nil {
			recv := srv.Received()
			names := make([]string, 0, len(recv))
			for n := range recv {
				names = append(names, n)
			}
			sort.Strings(names)
			for _, n := range names {
				ofRecv.addUint(recv[n], "bridge", br, "msg", n)
			}
			for _, r := range srv.Rejections() {
				ofErrors.addUint(r.Count, "bridge", br, "msg", r.Message, "error", r.Error, "reason", r.Reason)
			}
		}
	}
	for _, m := range []*metric{rxPackets, rxBytes, txPackets, txBytes, drops, txDrops, held, devDrops,
		pmdPkts, pmdEMC, pmdMF, pmdUpcall, pmdLost, pmdBatch, pmdBusy, pmdIdle, pmdGSO, pmdGSOSeg, pmdGSOErr, pmdSpins, lockups, spinLocks, flows, ports, ofRecv, ofErrors, ctConns, ctMax, ctEvents, ctFrags} {
		fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s %s\n", m.name, m.help, m.name, m.typ)
		for _, s := range m.samples {
			w.WriteString(s + "\n")
		}
	}
}
