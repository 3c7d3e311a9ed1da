# Prints the reference frames of solicit_test.go, one "name hex" a line,
# as scapy builds them: /usr/bin/python3 testdata/frames.py > testdata/frames.golden
from scapy.all import Ether, ARP, IPv6, ICMPv6ND_NS, ICMPv6ND_NA, ICMPv6NDOptSrcLLAddr, ICMPv6NDOptDstLLAddr, Dot1Q, raw
import sys
mac = "02:00:00:00:00:01"
frames = {
    "arp-request": Ether(dst="ff:ff:ff:ff:ff:ff", src=mac) / ARP(op=1, hwsrc=mac, psrc="192.0.2.1", hwdst="00:00:00:00:00:00", pdst="192.0.2.254"),
    "neigh-solicit": Ether(dst="33:33:ff:00:00:fe", src=mac) / IPv6(src="2001:db8:1::1", dst="ff02::1:ff00:fe", hlim=255) / ICMPv6ND_NS(tgt="2001:db8:1::fe") / ICMPv6NDOptSrcLLAddr(lladdr=mac),
    "arp-reply": Ether(dst=mac, src="02:00:00:00:00:fe") / ARP(op=2, hwsrc="02:00:00:00:00:fe", psrc="192.0.2.254", hwdst=mac, pdst="192.0.2.1"),
    "garp": Ether(dst="ff:ff:ff:ff:ff:ff", src="02:00:00:00:00:fd") / ARP(op=1, hwsrc="02:00:00:00:00:fd", psrc="192.0.2.253", hwdst="00:00:00:00:00:00", pdst="192.0.2.253"),
    "arp-request-other": Ether(dst="ff:ff:ff:ff:ff:ff", src="02:00:00:00:00:fc") / ARP(op=1, hwsrc="02:00:00:00:00:fc", psrc="192.0.2.252", pdst="192.0.2.1"),
    "neigh-advert": Ether(dst=mac, src="02:00:00:00:00:fe") / IPv6(src="2001:db8:1::fe", dst="2001:db8:1::1", hlim=255) / ICMPv6ND_NA(tgt="2001:db8:1::fe", R=0, S=1, O=1) / ICMPv6NDOptDstLLAddr(lladdr="02:00:00:00:00:fe"),
    "neigh-advert-vlan": Ether(dst=mac, src="02:00:00:00:00:fe") / Dot1Q(vlan=10) / IPv6(src="2001:db8:1::fe", dst="2001:db8:1::1", hlim=255) / ICMPv6ND_NA(tgt="2001:db8:1::fe", R=0, S=1, O=1) / ICMPv6NDOptDstLLAddr(lladdr="02:00:00:00:00:fe"),
    "neigh-advert-no-tll": Ether(dst=mac, src="02:00:00:00:00:fe") / IPv6(src="2001:db8:1::fe", dst="2001:db8:1::1", hlim=255) / ICMPv6ND_NA(tgt="2001:db8:1::fe", R=0, S=1, O=1),
    "neigh-advert-hlim64": Ether(dst=mac, src="02:00:00:00:00:fe") / IPv6(src="2001:db8:1::fe", dst="2001:db8:1::1", hlim=64) / ICMPv6ND_NA(tgt="2001:db8:1::fe") / ICMPv6NDOptDstLLAddr(lladdr="02:00:00:00:00:fe"),
}
for name, f in frames.items():
    sys.stdout.write("%s %s\n" % (name, raw(f).hex()))
