#!/usr/bin/env python3
"""Tables of `bench/fidelity.sh` results (the JSON `trafgen eval --json` writes per capture).

  fidelity_report.py table DIR          one run: capture x metric, synthetic/floor (and /baseline)
  fidelity_report.py seeds DIR          runs of several seeds (DIR/seed-N/): cells met per seed,
                                        and the cells where real data meets the goal and the
                                        synthetic arm does not, with the seeds they fail on
  fidelity_report.py diff DIR_A DIR_B   two binaries over the same seeds: totals per seed,
                                        every cell whose verdict differs, and per capture the
                                        geometric mean of synthetic/floor over its metrics and
                                        seeds (a verdict flips only at a line; this moves with
                                        every metric)

Goal (issue 8): a metric meets it when it is <= 1.5x the floor or within its absolute
tolerance, and, for a structure metric, <= 0.5x the independent-marginals baseline. The floor
"meets" a cell when real data itself (the first part) meets the structure goal: where it does
not, no generator can be asked to (`floor meets` in the tables; a structure metric whose
floor is within its absolute tolerance counts there too). "Real data meets the goal" is
stricter: the first part, put in the synthetic arm's place, meets the whole goal (for a
structure metric, <= 0.5x the baseline even where both are within the tolerance).
"""
import json
import math
import os
import sys


def load(run):
    """{capture: [metric, ...]} of one run's directory."""
    if not os.path.isdir(run):
        sys.exit(f"fidelity_report: {run}: no such directory")
    return {f[:-5]: json.load(open(os.path.join(run, f)))["metrics"]
            for f in sorted(os.listdir(run)) if f.endswith(".json") and os.path.getsize(os.path.join(run, f)) > 0}


def met(m):
    """Whether the synthetic arm meets the goal (None: the metric has no value)."""
    s, f, b, tol = m.get("synthetic"), m.get("floor"), m.get("baseline"), m.get("tolerance")
    if s is None:
        return None
    floor_ok = (tol is not None and s <= tol) or (f is not None and f > 0 and s <= 1.5 * f)
    base_ok = m["class"] != "structure" or (b is not None and b > 0 and s <= 0.5 * b)
    return floor_ok and base_ok


def floor_met(m):
    """Whether real data (the first part, in the synthetic arm's place) meets the whole goal."""
    return m.get("floor") is not None and met({**m, "synthetic": m["floor"]})


def reach(m):
    """Whether real data itself meets the structure goal (single-field metrics: always)."""
    f, b, tol = m.get("floor"), m.get("baseline"), m.get("tolerance")
    return m["class"] != "structure" or (tol is not None and f is not None and f <= tol) or (b is not None and f is not None and b > 0 and f <= 0.5 * b)


def cell(m):
    s, f, b, tol = m.get("synthetic"), m.get("floor"), m.get("baseline"), m.get("tolerance")
    if s is None:
        return "-"
    rf = "ok" if (tol is not None and s <= tol) else (f"{s / f:.2f}" if f else "-")
    if m["class"] == "structure" and b:
        return f"{rf}|{s / b:.2f}"
    return rf


def table(run):
    docs = load(run)
    if not docs:
        sys.exit(f"no results in {run}")
    names = [m["name"] for m in next(iter(docs.values()))]
    all_met = all_total = all_reach = 0
    print("synthetic/floor per metric ('ok' = within the absolute tolerance); structure metrics: floor-ratio|baseline-ratio")
    print(f"{'metric':<30} " + " ".join(f"{n[:14]:>14}" for n in docs) + f" {'meets goal':>11} {'floor meets':>11}")
    for name in names:
        row, n_met, total, n_reach = [], 0, 0, 0
        for metrics in docs.values():
            m = next(x for x in metrics if x["name"] == name)
            row.append(cell(m))
            if met(m) is None:
                continue
            total += 1
            n_met += met(m)
            n_reach += reach(m)
        print(f"{name:<30} " + " ".join(f"{c:>14}" for c in row) + f" {n_met:>5}/{total:<5} {n_reach:>5}/{total:<5}")
        all_met, all_total, all_reach = all_met + n_met, all_total + total, all_reach + n_reach
    print(f"{'all metrics':<30} " + " ".join(f"{'':>14}" for _ in docs) + f" {all_met:>5}/{all_total:<5} {all_reach:>5}/{all_total:<5}")


def seed_runs(root):
    """[(seed, directory)] of the seed-N directories under root, by seed."""
    if not os.path.isdir(root):
        sys.exit(f"fidelity_report: {root}: no such directory")
    runs = [(int(d[5:]), os.path.join(root, d)) for d in os.listdir(root) if d.startswith("seed-") and d[5:].isdigit()]
    if not runs:
        sys.exit(f"no seed-N directories in {root}")
    return sorted(runs)


def verdicts(docs):
    """{(capture, metric): (met, floor meets, real data meets the whole goal)} of one run's documents (metrics with a value)."""
    return {(c, m["name"]): (met(m), reach(m), floor_met(m)) for c, ms in docs.items() for m in ms if met(m) is not None}


def seeds(root):
    runs = seed_runs(root)
    failing = {}
    sums = [0, 0, 0]
    for seed, run in runs:
        v = verdicts(load(run))
        n_met, n_reach = sum(x[0] for x in v.values()), sum(x[1] for x in v.values())
        print(f"seed {seed}: meets goal {n_met}/{len(v)}, floor meets {n_reach}/{len(v)}")
        sums = [sums[0] + n_met, sums[1] + n_reach, sums[2] + len(v)]
        for key, (m, _, real) in v.items():
            if real and not m:
                failing.setdefault(key, []).append(seed)
    print(f"all {len(runs)} seeds: meets goal {sums[0]}/{sums[2]}, floor meets {sums[1]}/{sums[2]}")
    print(f"\ncells where real data meets the goal and the synthetic arm does not ({sum(map(len, failing.values()))}), by seeds failed:")
    per_capture = {}
    for (c, _), s in failing.items():
        per_capture[c] = per_capture.get(c, 0) + len(s)
    print("  by capture: " + ", ".join(f"{c} {n}" for c, n in sorted(per_capture.items())))
    for (c, name), s in sorted(failing.items(), key=lambda kv: (-len(kv[1]), kv[0])):
        print(f"  {len(s)}  {c[:36]:<36} {name:<30} seeds {' '.join(map(str, s))}")


def diff(a, b):
    runs_a, runs_b = dict(seed_runs(a)), dict(seed_runs(b))
    common = sorted(set(runs_a) & set(runs_b))
    if not common:
        sys.exit("no seed the two runs share")
    docs = {seed: (load(runs_a[seed]), load(runs_b[seed])) for seed in common}
    tot = [0, 0]
    for seed in common:
        va, vb = verdicts(docs[seed][0]), verdicts(docs[seed][1])
        na, nb = sum(x[0] for x in va.values()), sum(x[0] for x in vb.values())
        tot = [tot[0] + na, tot[1] + nb]
        print(f"seed {seed}: A {na}/{len(va)}  B {nb}/{len(vb)}")
        for key in sorted(set(va) | set(vb)):
            ma, mb = va.get(key, (None,))[0], vb.get(key, (None,))[0]
            if ma != mb:
                print(f"    {key[0][:36]:<36} {key[1]:<30} A={ma} B={mb}")
    print(f"seeds {' '.join(map(str, common))}: A {tot[0]}, B {tot[1]}")
    # the geometric mean of synthetic/floor over the metrics both runs have a ratio for
    # (ratios below 0.1 count as 0.1: a cell far under its floor cannot outweigh the rest)
    logs = {}
    for seed in common:
        ra, rb = ratios(docs[seed][0]), ratios(docs[seed][1])
        for key in set(ra) & set(rb):
            l = logs.setdefault(key[0], [0.0, 0.0, 0])
            l[0] += math.log(max(ra[key], 0.1))
            l[1] += math.log(max(rb[key], 0.1))
            l[2] += 1
    print("geometric mean of synthetic/floor (lower is closer to real):")
    for c, (la, lb, n) in sorted(logs.items()):
        print(f"    {c[:36]:<36} {n:>4} values  A {math.exp(la / n):.3f}  B {math.exp(lb / n):.3f}")
    la, lb, n = (sum(v[i] for v in logs.values()) for i in range(3))
    if n:
        print(f"    {'all':<36} {n:>4} values  A {math.exp(la / n):.3f}  B {math.exp(lb / n):.3f}")


def ratios(docs):
    """{(capture, metric): synthetic/floor} of one run's documents, where both are there and the floor is > 0."""
    return {(c, m["name"]): m["synthetic"] / m["floor"] for c, ms in docs.items() for m in ms
            if m.get("synthetic") is not None and m.get("floor")}


if __name__ == "__main__":
    cmd, args = (sys.argv[1], sys.argv[2:]) if len(sys.argv) > 1 else ("", [])
    if cmd == "table" and len(args) == 1:
        table(args[0])
    elif cmd == "seeds" and len(args) == 1:
        seeds(args[0])
    elif cmd == "diff" and len(args) == 2:
        diff(*args)
    else:
        sys.exit(__doc__)
