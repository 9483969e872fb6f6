#!/usr/bin/env python3
"""Write synthetic Ethernet/IPv4/UDP pcaps (nanosecond pcap format) for replay benchmarks.
Each UDP payload starts with a big-endian u32 sequence number so captures can be matched 1:1.
Frame sizes uniform in [64,1500] bytes (Ethernet frame w/o FCS). Addresses: 10.200.0.1 -> 10.200.0.2.
(env FIXED_LEN=64 forces a fixed frame size; env DST_MAC=0200000000fe sets the destination MAC)
Copied from shared/anchors/gen_pcap.py (the anchors' measurement method) for bench/emit.sh.
Usage: gen_pcap.py OUT.pcap N {cbr|exp} MEAN_IAT_US [seed]
"""
import struct, sys, random, os

def csum(b):
    if len(b) % 2: b += b'\0'
    s = sum(struct.unpack('!%dH' % (len(b)//2), b))
    while s >> 16: s = (s & 0xffff) + (s >> 16)
    return (~s) & 0xffff

def frame(seq, flen, sport):
    dst = bytes.fromhex(os.environ.get('DST_MAC', '020000000002')); src = bytes.fromhex('020000000001')
    eth = dst + src + b'\x08\x00'
    udp_len = flen - 14 - 20
    payload = struct.pack('!I', seq) + bytes((seq + i) & 0xff for i in range(udp_len - 8 - 4))
    sip = bytes([10,200,0,1]); dip = bytes([10,200,0,2])
    ip = struct.pack('!BBHHHBBH4s4s', 0x45, 0, 20 + udp_len, seq & 0xffff, 0x4000, 64, 17, 0, sip, dip)
    ip = ip[:10] + struct.pack('!H', csum(ip)) + ip[12:]
    udp = struct.pack('!HHHH', sport, 9, udp_len, 0)
    pseudo = sip + dip + struct.pack('!BBH', 0, 17, udp_len)
    c = csum(pseudo + udp + payload) or 0xffff
    udp = udp[:6] + struct.pack('!H', c)
    return eth + ip + udp + payload

def main():
    out, n, mode, mean_us = sys.argv[1], int(sys.argv[2]), sys.argv[3], float(sys.argv[4])
    rnd = random.Random(int(sys.argv[5]) if len(sys.argv) > 5 else 1)
    t_ns = 1_700_000_000 * 10**9
    with open(out, 'wb') as f:
        f.write(struct.pack('<IHHiIII', 0xa1b23c4d, 2, 4, 0, 0, 65535, 1))  # nanosecond pcap, DLT_EN10MB
        for seq in range(n):
            flen = int(os.environ['FIXED_LEN']) if os.environ.get('FIXED_LEN') else rnd.randint(64, 1500)
            fr = frame(seq, flen, 10000 + (seq % 64))   # 64 flows
            f.write(struct.pack('<IIII', t_ns // 10**9, t_ns % 10**9, len(fr), len(fr)))
            f.write(fr)
            iat = mean_us if mode == 'cbr' else rnd.expovariate(1.0 / mean_us)
            t_ns += int(round(iat * 1000))
main()
