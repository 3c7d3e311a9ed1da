// Package ovnrules generates OpenFlow rules in ovs-ofctl syntax shaped as
// OVN writes them into ovs-vswitchd, for benchmarks (bench/rules) and the
// flow table's memory benchmark.
package ovnrules

import (
	"fmt"
	"io"
)

// The rules are shaped as OVN's logical switch pipeline writes them into
// ovs-vswitchd: a logical port's ingress classification in table 0, port
// security on its MAC and IP addresses, ACLs over several fields (IPv4 and
// IPv6 prefixes, protocols, transport ports, conjunctive matches built from
// address sets), a MAC lookup and the output stage, each in its own
// table, with register loads and resubmits between them. Every rule has a
// distinct match and priority, so all n are installed.
//
// The shares, per 100 rules: 8 ingress, 8 port security (L2), 8 port
// security (IP), 40 ACLs on IPv4, 10 ACLs on IPv6, 10 conjunctive ACL
// clauses and conjunction flows, 8 MAC lookup, 8 output.

// Write writes n rules in ovs-ofctl syntax, one per line.
func Write(w io.Writer, n int) error {
	for i := range n {
		if _, err := io.WriteString(w, Rule(i)); err != nil {
			return err
		}
	}
	return nil
}

// Rule returns rule number i, with its newline.
func Rule(i int) string {
	block, k := i/100, i%100
	// Logical port p of datapath (logical switch) dp: 100 rules per
	// port, 20 ports per switch.
	p := block + 1
	dp := block/20 + 1
	mac := fmt.Sprintf("0a:00:%02x:%02x:%02x:%02x", byte(p>>16), byte(p>>8), byte(p), byte(k))
	ip4 := fmt.Sprintf("10.%d.%d.%d", byte(p>>8), byte(p), k+1)
	switch {
	case k < 8: // ingress: logical port and datapath into registers
		return fmt.Sprintf("table=0,priority=100,in_port=%d,dl_vlan=%d,actions=load:0x%x->NXM_NX_REG13[],load:0x%x->OXM_OF_METADATA[],load:0x%x->NXM_NX_REG14[],resubmit(,8)\n",
			p, k+1, k+1, dp, p)
	case k < 16: // port security, L2
		return fmt.Sprintf("table=8,priority=50,reg14=0x%x,metadata=0x%x,dl_src=%s,actions=resubmit(,9)\n", p, dp, mac)
	case k < 24: // port security, IP
		return fmt.Sprintf("table=9,priority=90,ip,reg14=0x%x,metadata=0x%x,dl_src=%s,nw_src=%s,actions=resubmit(,10)\n", p, dp, mac, ip4)
	case k < 64: // ACLs on IPv4: remote prefix, protocol, port
		proto := []string{"tcp", "udp", "tcp", "tcp"}[k%4]
		return fmt.Sprintf("table=44,priority=%d,%s,reg15=0x%x,metadata=0x%x,nw_src=10.%d.%d.0/24,tp_dst=%d,actions=load:0x1->NXM_NX_REG0[1],resubmit(,45)\n",
			2000+k, proto, p, dp, byte(k), byte(p), 1024+k*16+p%16)
	case k < 74: // ACLs on IPv6
		return fmt.Sprintf("table=44,priority=%d,tcp6,reg15=0x%x,metadata=0x%x,ipv6_src=fd00:%x:%x::/64,tp_dst=%d,actions=load:0x1->NXM_NX_REG0[1],resubmit(,45)\n",
			2000+k, p, dp, p, k, 443+k)
	case k < 76: // conjunctive ACL: the flow a matched conjunction runs
		return fmt.Sprintf("table=44,priority=3000,conj_id=%d,ip,metadata=0x%x,actions=load:0x1->NXM_NX_REG0[1],resubmit(,45)\n", 2*p+k-74, dp)
	case k < 80: // first clause: the port
		return fmt.Sprintf("table=44,priority=3000,ip,reg15=0x%x,metadata=0x%x,nw_proto=%d,actions=conjunction(%d,1/2)\n", p, dp, []int{6, 17, 1, 132}[k-76], 2*p+k%2)
	case k < 84: // second clause: an address set
		return fmt.Sprintf("table=44,priority=3000,ip,metadata=0x%x,nw_src=192.168.%d.%d,actions=conjunction(%d,2/2)\n", dp, byte(p), k, 2*p+k%2)
	case k < 92: // MAC lookup
		return fmt.Sprintf("table=27,priority=50,metadata=0x%x,dl_dst=%s,actions=load:0x%x->NXM_NX_REG15[],resubmit(,37)\n", dp, mac, p)
	default: // output
		return fmt.Sprintf("table=65,priority=100,reg15=0x%x,metadata=0x%x,reg13=0x%x,actions=mod_vlan_vid:%d,output:%d\n", p, dp, k, k-90, p%0xff00)
	}
}
