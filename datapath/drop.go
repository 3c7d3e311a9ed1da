package datapath

import (
	"fmt"
	"strings"
)

// DropReason names why a packet (or one output copy of it) was dropped.
// Every drop the datapath makes is counted under exactly one reason.
type DropReason uint8

// The drop reasons.
const (
	DropNoRule            DropReason = iota // no matching rule, or the rule's actions output nowhere (explicit drop)
	DropMalformed                           // the frame's headers are truncated or invalid
	DropActionCap                           // more actions than flow.MaxActions (a list built in code; parsing refuses it)
	DropTTLExceeded                         // dec_ttl on a TTL of 0 or 1
	DropNoRoom                              // no space in the frame buffer to push a VLAN tag
	DropPortGone                            // output to a port that is not in the port table
	DropNotRegistered                       // output to a device that is unregistering or unregistered
	DropNotRunning                          // output to a device that is down
	DropNoCarrier                           // output to a device without carrier
	DropNoTxQueues                          // output to a device with no tx queues
	DropTxRingFull                          // the port's tx ring had no room
	DropTxError                             // the port failed to transmit (device gone mid-transmit)
	DropSamePort                            // output to the ingress port without in_port (OpenFlow forbids it)
	DropLockup                              // the packet that held a poll thread in a soft lockup
	DropResubmitDepth                       // translation: resubmits nested deeper than flow.MaxResubmitDepth
	DropResubmitLimit                       // translation: more than flow.MaxResubmits resubmits
	DropStackTooDeep                        // translation: push past flow.MaxStack values
	DropPacketInQueueFull                   // a packet in for the controllers found the bridge's packet-in queue full
	DropNoController                        // a packet in while no controller takes packet ins
	DropConntrackFull                       // ct could not commit a new connection: the tracker or the zone's limit is full
	DropNoConntrack                         // a ct action on a bridge built without a connection tracker
	DropNoRecircContext                     // a recirculated packet whose id names no frozen pipeline state
	DropRecircDepth                         // a packet recirculated more than MaxRecircDepth times
	DropTunnelRouting                       // tunnel output: no route to the remote, or the route leaves through no bridge's internal port
	DropTunnelNeighMiss                     // tunnel output: the next hop's link-layer address is not known (yet)
	DropTunnelMetadata                      // tunnel output: remote_ip=flow and the flow set no tun_dst, or outer addresses of two families
	DropTunnelMTU                           // tunnel output: the encapsulated packet exceeds the underlay's MTU
	DropTunnelPush                          // tunnel output: the encapsulation could not be built (too big for a frame buffer)
	DropTunnelPop                           // tunnel input: a packet to a tunnel's UDP port with a malformed outer or tunnel header
	DropTunnelNoPort                        // tunnel input: no tunnel port takes the packet (unknown key, remote or local address)
	DropMeter                               // the packet (or its packet in) exceeded a meter's drop band
	NumDropReasons
)

var dropNames = [NumDropReasons]string{
	DropNoRule:            "no-rule",
	DropMalformed:         "malformed",
	DropActionCap:         "action-cap",
	DropTTLExceeded:       "ttl-exceeded",
	DropNoRoom:            "no-room",
	DropPortGone:          "port-gone",
	DropNotRegistered:     "not-registered",
	DropNotRunning:        "not-running",
	DropNoCarrier:         "no-carrier",
	DropNoTxQueues:        "no-tx-queues",
	DropTxRingFull:        "tx-ring-full",
	DropTxError:           "tx-error",
	DropSamePort:          "same-port",
	DropLockup:            "lockup",
	DropResubmitDepth:     "resubmit-depth",
	DropResubmitLimit:     "resubmit-limit",
	DropStackTooDeep:      "stack-too-deep",
	DropPacketInQueueFull: "packet-in-queue-full",
	DropNoController:      "no-controller",
	DropConntrackFull:     "conntrack-full",
	DropNoConntrack:       "no-conntrack",
	DropNoRecircContext:   "no-recirc-context",
	DropRecircDepth:       "recirc-depth",
	DropTunnelRouting:     "tunnel-routing-failed",
	DropTunnelNeighMiss:   "tunnel-neigh-cache-miss",
	DropTunnelMetadata:    "invalid-tunnel-metadata",
	DropTunnelMTU:         "tunnel-mtu-exceeded",
	DropTunnelPush:        "tunnel-push-error",
	DropTunnelPop:         "tunnel-pop-error",
	DropTunnelNoPort:      "tunnel-no-port",
	DropMeter:             "meter-drop",
}

func (r DropReason) String() string {
	if r < NumDropReasons {
		return dropNames[r]
	}
	return fmt.Sprintf("drop(%d)", uint8(r))
}

// FormatDrops renders the non-zero counts of d as "reason=n" joined by sep,
// in the order of the reasons, or none when every count is zero.
func FormatDrops(d *[NumDropReasons]uint64, sep, none string) string {
	var parts []string
	for r, n := range d {
		if n > 0 {
			parts = append(parts, fmt.Sprintf("%s=%d", DropReason(r), n))
		}
	}
	if len(parts) == 0 {
		return none
	}
	return strings.Join(parts, sep)
}
