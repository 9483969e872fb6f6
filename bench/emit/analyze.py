#!/usr/bin/env python3
"""Copied from shared/anchors/analyze.py (the anchors' measurement method) for bench/emit.sh.
Compare a capture against the reference pcap (matched by the u32 seq in the UDP payload).
Usage: analyze.py REF.pcap CAP.pcap MODE [PPS]
  MODE=pcap : intended schedule = reference pcap timestamps (optionally scaled by multiplier PPS-arg as float)
  MODE=pps  : intended schedule = constant 1/PPS spacing
  MODE=cbr  : like pps but ignores payload seq (generators without seq numbers)
  MODE=top  : only rate/loss
Reports: achieved rate, loss, reordering, IAT error (captured IAT - intended IAT) and schedule
error (captured offset from first pkt - intended offset), |abs| median/p90/p99/p99.9/max in microseconds.
"""
import struct, sys, json

def read_pcap(path):
    with open(path, 'rb') as f:
        data = f.read()
    magic = struct.unpack('<I', data[:4])[0]
    if magic == 0xa1b2c3d4: div = 1000
    elif magic == 0xa1b23c4d: div = 1
    else: raise SystemExit('unsupported pcap magic %x' % magic)
    off = 24; out = []
    while off + 16 <= len(data):
        s, frac, incl, orig = struct.unpack('<IIII', data[off:off+16]); off += 16
        pkt = data[off:off+incl]; off += incl
        ts = s * 10**9 + frac * (1000 if div == 1000 else 1)
        if len(pkt) >= 46 and pkt[12:14] == b'\x08\x00' and pkt[23] == 17:
            ihl = (pkt[14] & 0xf) * 4
            seq = struct.unpack('!I', pkt[14+ihl+8:14+ihl+12])[0]
            out.append((ts, seq, orig))
    return out

def pct(v, p):
    if not v: return float('nan')
    v = sorted(v); k = min(len(v)-1, int(round(p/100.0*(len(v)-1))))
    return v[k]

def summ(errs_ns):
    a = [abs(x)/1000.0 for x in errs_ns]
    return {k: round(pct(a, p), 3) for k, p in (('med', 50), ('p90', 90), ('p99', 99), ('p99.9', 99.9), ('max', 100))}

def main():
    ref, cap, mode = sys.argv[1], sys.argv[2], sys.argv[3]
    arg = float(sys.argv[4]) if len(sys.argv) > 4 else None
    R = read_pcap(ref); C = read_pcap(cap)
    rts = {seq: ts for ts, seq, _ in R}
    nbytes = sum(o for _, _, o in C)
    res = {'ref_pkts': len(R), 'cap_pkts': len(C), 'lost': len(R) - len(set(s for _, s, _ in C))}
    if len(C) < 2: print(json.dumps(res)); return
    dur = (C[-1][0] - C[0][0]) / 1e9
    res['dur_s'] = round(dur, 6); res['pps'] = round((len(C)-1)/dur, 1); res['mbps_l2'] = round(nbytes*8/dur/1e6, 2)
    res['reordered'] = sum(1 for i in range(1, len(C)) if C[i][1] < C[i-1][1])
    if mode == 'top': print(json.dumps(res)); return
    iat_err, sched_err, gaps = [], [], []
    t0c, s0 = C[0][0], C[0][1]
    for i in range(1, len(C)):
        (ta, sa, _), (tb, sb, _) = C[i-1], C[i]
        gaps.append((tb - ta)/1000.0)
        if mode == 'cbr':   # ignore seq numbers, assume no loss: packet i due at i/PPS
            want_iat = 1e9 / arg; want_off = i * 1e9 / arg
        elif mode == 'pps':
            want_iat = (sb - sa) * 1e9 / arg; want_off = (sb - s0) * 1e9 / arg
        else:
            m = arg or 1.0
            want_iat = (rts[sb] - rts[sa]) / m; want_off = (rts[sb] - rts[s0]) / m
        iat_err.append((tb - ta) - want_iat)
        sched_err.append((tb - t0c) - want_off)
    res['iat_abs_err_us'] = summ(iat_err)
    res['iat_signed_err_us_med'] = round(pct(iat_err, 50)/1000, 3)
    res['sched_abs_err_us'] = summ(sched_err)
    off = pct(sched_err, 50)   # remove constant start offset: jitter around best constant-offset schedule
    res['sched_centered_abs_err_us'] = summ([x - off for x in sched_err])
    res['frac_iat_err_gt_10us'] = round(sum(1 for x in iat_err if abs(x) > 10000)/len(iat_err), 4)
    res['final_drift_us'] = round(sched_err[-1]/1000, 1)
    res['captured_gap_us'] = {k: round(pct(gaps, p), 3) for k, p in (('min', 0), ('med', 50), ('p99', 99), ('max', 100))}
    print(json.dumps(res))
if __name__ == '__main__':
    main()
