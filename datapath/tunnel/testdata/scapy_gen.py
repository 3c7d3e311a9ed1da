#!/usr/bin/python3
# Builds scapy.pcap: tunnel packets made by scapy (an implementation of
# VXLAN and Geneve independent of ovsxdp's), which TestEncapMatchesScapy
# decodes and re-encodes byte for byte. The cases must stay in step with
# scapyCases in scapy_test.go. Regenerate (Debian: python3-scapy):
#   /usr/bin/python3 datapath/tunnel/testdata/scapy_gen.py datapath/tunnel/testdata/scapy.pcap
import sys

from scapy.all import Ether, IP, IPv6, UDP, Raw, wrpcap
from scapy.layers.vxlan import VXLAN
from scapy.contrib.geneve import GENEVE, GeneveOptions

MAC_A, MAC_B = "02:11:22:33:44:01", "02:11:22:33:44:02"
V4_A, V4_B = "192.0.2.1", "192.0.2.2"
V6_A, V6_B = "2001:db8::1", "2001:db8::2"


def inner(n):
    return (Ether(src="02:00:00:00:00:0a", dst="02:00:00:00:00:0b") /
            IP(src="10.9.0.1", dst="10.9.0.2", ttl=64, id=1) /
            UDP(sport=1000, dport=2000) / Raw(bytes(i % 256 for i in range(n))))


def v4(tos, ttl, ident, df):
    return IP(src=V4_A, dst=V4_B, tos=tos, ttl=ttl, id=ident, flags="DF" if df else 0)


def v6(tc, hlim):
    return IPv6(src=V6_A, dst=V6_B, tc=tc, hlim=hlim, fl=0)


def udp(sport, dport, csum):
    return UDP(sport=sport, dport=dport) if csum else UDP(sport=sport, dport=dport, chksum=0)


eth = Ether(src=MAC_A, dst=MAC_B)
opts = [GeneveOptions(classid=0x0102, type=0x80, data=b"\x01\x02\x03\x04"),
        GeneveOptions(classid=0xffff, type=0x05, data=b""),
        GeneveOptions(classid=0x0001, type=0x7f, data=b"\x09" * 4 + b"\x08" * 4)]
pkts = [
    # vxlan4: VNI 42, DF, no checksum
    eth / v4(0, 64, 7, True) / udp(50000, 4789, False) / VXLAN(flags=0x08, vni=42) / inner(20),
    # vxlan4-csum: checksum, TOS 0xb8, TTL 7, no DF
    eth / v4(0xb8, 7, 0x1234, False) / udp(32768, 4789, True) / VXLAN(flags=0x08, vni=0xffffff) / inner(300),
    # vxlan6-csum: traffic class 0x28, hop limit 255
    eth / v6(0x28, 255) / udp(60999, 4789, True) / VXLAN(flags=0x08, vni=1) / inner(64),
    # geneve4-opts: three options, one critical, checksum, port 6081
    eth / v4(0, 64, 9, True) / udp(40000, 6081, True) /
    GENEVE(vni=5000, proto=0x6558, critical=1, options=opts) / inner(33),
    # geneve6-oam: OAM, no options, no checksum
    eth / v6(0, 64) / udp(45000, 6081, False) / GENEVE(vni=77, proto=0x6558, oam=1) / inner(0),
    # geneve4-plain: no options, no checksum, no DF
    eth / v4(0x10, 3, 0xfffe, False) / udp(33333, 6081, False) / GENEVE(vni=0, proto=0x6558) / inner(100),
    # geneve4-long-option: one option of 31 words, the most one can hold
    eth / v4(0, 64, 11, True) / udp(41000, 6081, True) /
    GENEVE(vni=3, proto=0x6558, critical=1, options=[GeneveOptions(classid=0x0103, type=0x82, data=bytes(range(124)))]) / inner(10),
]
wrpcap(sys.argv[1], pkts)
