package daemon

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/ovsxdp/ovsxdp/datapath"
	"github.com/ovsxdp/ovsxdp/datapath/tunnel"
	"github.com/ovsxdp/ovsxdp/vport"
)

// Tunnel port types: Open vSwitch's native tunnels (datapath/tunnelport.go).
const (
	typeVXLAN  = "vxlan"
	typeGeneve = "geneve"
)

// isTunnelType reports whether typ is a tunnel port type.
func isTunnelType(typ string) bool { return typ == typeVXLAN || typ == typeGeneve }

// newTunnelVPort creates the vxlan or geneve port pc describes, with Open
// vSwitch's options (remote_ip, local_ip, key, in_key, out_key, dst_port,
// csum, df_default, tos, ttl).
func newTunnelVPort(pc *portConfig) (vport.Port, error) {
	kind, err := tunnel.ParseKind(pc.Type)
	if err != nil {
		return nil, err
	}
	opts, err := tunnel.ParseOptions(kind, pc.Options)
	if err != nil {
		return nil, err
	}
	return datapath.NewTunnelPort(pc.Name, opts)
}

// newTunnels starts the resolution of the tunnel ports' paths through the
// daemon's route table (underlayTable: the kernel's routes and neighbours
// of the daemon's network namespace, followed over netlink, and the
// tunnel neighbour cache), the one ovs/route/show and tnl/neigh/show
// print. The table is opened when the first tunnel port needs it;
// until it opens (without netlink), tunnel output drops as
// tunnel-routing-failed, and the daemon says why.
func (d *Daemon) newTunnels(log *slog.Logger) *datapath.Tunnels {
	return datapath.NewTunnels(datapath.TunnelsConfig{
		Log: log.With("component", "tunnels"),
		OpenResolver: func() (datapath.PathResolver, error) {
			t, err := d.underlayTable()
			if err != nil {
				return nil, err
			}
			return t, nil
		},
	})
}

// tunnelRefreshTimeout bounds the wait for the tunnel paths after a port
// change.
const tunnelRefreshTimeout = 5 * time.Second

// tunnelsChangedLocked looks the tunnel paths up again after a port of
// type typ was added or removed, if that can change them: a tunnel port,
// or an internal port (an underlay endpoint). d.mu must be held.
func (d *Daemon) tunnelsChangedLocked(typ string) {
	if d.tunnels == nil || (!isTunnelType(typ) && typ != typeInternal) {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), tunnelRefreshTimeout)
	defer cancel()
	if err := d.tunnels.Refresh(ctx); err != nil {
		d.log.Warn("tunnel paths not refreshed after a port change; the periodic refresh will", "err", err)
	}
}

// tnlPortsShow is tnl/ports/show: the UDP ports the tunnel ports listen
// on, as Open vSwitch lists them ("vxlan_sys_4789 (4789) ref_cnt=1"),
// then each tunnel port's path to each remote endpoint it resolved.
func (d *Daemon) tnlPortsShow(*call) (string, error) {
	type listen struct {
		kind string
		port uint16
	}
	refs := map[listen]int{}
	for _, b := range d.sortedLocked() {
		for _, p := range b.dp.Ports() {
			if tp, ok := p.VPort().(*datapath.TunnelPort); ok {
				o := tp.Options()
				refs[listen{o.Kind.String(), o.DstPort}]++
			}
		}
	}
	keys := slices.SortedFunc(maps.Keys(refs), func(a, b listen) int {
		if c := cmp.Compare(a.kind, b.kind); c != 0 {
			return c
		}
		return cmp.Compare(a.port, b.port)
	})
	var s strings.Builder
	s.WriteString("Listening ports:\n")
	for _, k := range keys {
		prefix := k.kind
		if k.kind == "geneve" {
			prefix = "genev" // as Open vSwitch names its geneve device
		}
		fmt.Fprintf(&s, "%s_sys_%d (%d) ref_cnt=%d\n", prefix, k.port, k.port, refs[k])
	}
	paths := d.tunnels.Paths()
	if len(paths) > 0 {
		s.WriteString("Paths:\n")
	}
	for _, p := range paths {
		state := "ok"
		if !p.OK {
			state = "drop " + p.Drop.String()
		}
		fmt.Fprintf(&s, "%s %s remote %s: %s: %s\n", p.Bridge, p.Port, p.Remote, state, p.Detail)
	}
	return s.String(), nil
}
