#!/usr/bin/env python3
"""The best IAT error a spinning sender could reach on a CPU that goes away (issue 6).

Usage: cpu_bound.py PROBE.txt SCHEDULE.pcap
PROBE.txt is cpu_probe's output (intervals when a spinning thread did not run). The frames
of SCHEDULE.pcap are laid over it, repeating the probe if the schedule is longer: an ideal
pacer sends each frame exactly at its deadline, except that a frame due while the CPU is
away goes when it comes back. Prints how often the CPU went away and the IAT error
(|sent gap - intended gap|) p50/p99 of two ideal senders:
  burst: keeps its absolute deadlines; what was due while the CPU was away goes at once when
         it comes back (trafgen's default `--stall burst` with no cost per frame);
  floor: only the first frame due in each absence is off (by the wait), the others keep their
         gaps and the time is made up for free later: no sender on this CPU does better.
"""
import bisect, json, os, sys
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from analyze import read_pcap, summ

def main():
    probe, sched = sys.argv[1], sys.argv[2]
    lines = open(probe).read().split('\n')
    secs = float(lines[0].split()[2])
    gaps = [tuple(map(int, l.split())) for l in lines[1:] if l.strip()]
    span = int(secs * 1e9)
    starts = [a for a, _ in gaps]
    ts = [t for t, _, _ in read_pcap(sched)]
    t0 = ts[0]
    sent, floor, last_away = [], [], None
    for t in ts:
        due = t - t0
        k, off = divmod(due, span)
        i = bisect.bisect_right(starts, off) - 1
        wait = 0
        if i >= 0 and gaps[i][0] <= off < gaps[i][0] + gaps[i][1]:
            wait = gaps[i][0] + gaps[i][1] - off
            floor.append(wait if (k, i) != last_away else 0)
            last_away = (k, i)
        else:
            floor.append(0)
        sent.append(max(due + wait, sent[-1]) if sent else due + wait)
    err = [(sent[i] - sent[i - 1]) - (ts[i] - ts[i - 1]) for i in range(1, len(ts))]
    per_s = lambda us: sum(1 for _, d in gaps if d > us * 1000) / secs
    r = {'probe_s': secs, 'away_per_s': {f'>{us}us': round(per_s(us)) for us in (2, 5, 10, 20, 50)},
         'away_share': round(sum(d for _, d in gaps) / span, 4), 'ideal_iat_abs_err_us': summ(err),
         'floor_iat_abs_err_us': summ(floor[1:])}
    print(json.dumps(r))

if __name__ == '__main__':
    main()
