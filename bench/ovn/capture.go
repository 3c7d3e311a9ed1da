package main

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"os/exec"
	"slices"
	"strconv"
	"strings"
)

// capture is what tshark decodes of the Geneve packets on the wire
// between the chassis.
type capture struct {
	packets int
	groups  []geneveGroup
}

// geneveGroup is the packets of one kind: the same outer addresses, UDP
// checksum verdict, VNI, option and inner packet kind.
type geneveGroup struct {
	src, dst string
	csum     string // tshark's verdict on the outer UDP checksum
	vni      string
	// class, typ, length and data are the options tshark found,
	// comma-separated when there are several.
	class, typ, length, data string
	inner                    string
	n                        int
}

// tsharkFields are the fields readCapture asks tshark for, in order.
var tsharkFields = []string{"ip.src", "ip.dst", "udp.checksum.status", "geneve.vni", "geneve.option.class",
	"geneve.option.type", "geneve.option.length", "geneve.option.unknown.data", "arp.opcode", "icmp.type"}

// readCapture decodes the capture's Geneve packets with tshark, which
// checks the outer UDP checksum (Open vSwitch's csum=true fills it in).
func readCapture(pcap string) (*capture, error) {
	args := []string{"-r", pcap, "-n", "-o", "udp.check_checksum:TRUE", "-d", "udp.port==6081,geneve", "-Y", "geneve",
		"-T", "fields", "-E", "separator=|", "-E", "occurrence=a", "-E", "aggregator=,"}
	for _, f := range tsharkFields {
		args = append(args, "-e", f)
	}
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	// stdout alone: tshark warns on stderr when it runs as root.
	var stderr bytes.Buffer
	c := exec.CommandContext(ctx, "tshark", args...)
	c.Stderr = &stderr
	out, err := c.Output()
	if err != nil {
		return nil, fmt.Errorf("tshark %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return parseCapture(string(out))
}

// parseCapture groups tshark's lines (tsharkFields, separated by |, each
// field's occurrences by commas).
func parseCapture(out string) (*capture, error) {
	c := &capture{}
	idx := map[geneveGroup]int{}
	for _, l := range strings.Split(strings.TrimRight(out, "\n"), "\n") {
		if l == "" {
			continue
		}
		f := strings.Split(l, "|")
		if len(f) != len(tsharkFields) {
			return nil, fmt.Errorf("tshark line %q: %d fields, want %d", l, len(f), len(tsharkFields))
		}
		first := func(s string) string { v, _, _ := strings.Cut(s, ","); return v }
		// tshark gives geneve.option.length twice for an option, both
		// times in bytes with the option's header.
		length := f[6]
		if ls := strings.Split(length, ","); len(ls) == 2 && ls[0] == ls[1] {
			length = ls[0]
		}
		g := geneveGroup{src: first(f[0]), dst: first(f[1]), csum: checksumStatus(first(f[2])), vni: f[3],
			class: f[4], typ: f[5], length: length, data: f[7], inner: innerKind(f[8], f[9])}
		c.packets++
		i, ok := idx[g]
		if !ok {
			i = len(c.groups)
			idx[g] = i
			c.groups = append(c.groups, g)
		}
		c.groups[i].n++
	}
	slices.SortStableFunc(c.groups, func(a, b geneveGroup) int {
		return cmp.Or(cmp.Compare(a.src, b.src), cmp.Compare(a.inner, b.inner), cmp.Compare(a.data, b.data))
	})
	return c, nil
}

// checksumStatus names tshark's udp.checksum.status.
func checksumStatus(v string) string {
	switch v {
	case "0":
		return "bad"
	case "1":
		return "good"
	case "2", "":
		return "none" // zero, not checked
	}
	return v
}

func innerKind(arpOp, icmpType string) string {
	switch {
	case arpOp == "1":
		return "ARP request"
	case arpOp == "2":
		return "ARP reply"
	case icmpType == "8":
		return "ICMP echo request"
	case icmpType == "0":
		return "ICMP echo reply"
	}
	return "other"
}

// ovnPorts reads OVN's option (class 0x102, type 0x80, 4 bytes): the
// logical ingress port's tunnel key in bits 16 to 30, the egress port's
// (or multicast group's) in bits 0 to 15. ok is false when the data is
// not 4 bytes.
func ovnPorts(data string) (ingress, egress int, ok bool) {
	h := strings.TrimPrefix(strings.ReplaceAll(data, ":", ""), "0x")
	if len(h) != 8 {
		return 0, 0, false
	}
	v, err := strconv.ParseUint(h, 16, 32)
	if err != nil {
		return 0, 0, false
	}
	return int(v>>16) & 0x7fff, int(v & 0xffff), true
}
