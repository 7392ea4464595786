#!/usr/bin/env python3
"""Summarises bench/field/run's runs: REPORT/field.json (every figure), REPORT/field.md (tables),
REPORT/field-<profile>.png (test accuracy against wall time, one line per method, gnuplot).

Time to target: the first of field-watch's samples of the kept model (taken every --sample-interval
seconds during the run, each evaluated after it on --curve-images test images) at or above the target.
Where dense synchronous SGD does not reach it within the run, its time is given as a lower bound
(the run's length) and as a projection: the rounds dense needed on `datacenter` times the mean round
time it managed on this profile (rounds = model versions, one per synchronous round).
Bytes are the veth links' own counters (IP, TCP and NATS framing included).
"""
import argparse
import collections
import json
import os
import subprocess
import sys


def load_runs(report):
    runs = {}
    base = os.path.join(report, "runs")
    for name in sorted(os.listdir(base)):
        d = os.path.join(base, name)
        w = json.load(open(os.path.join(d, "watch.json")))
        profile, method = w["label"].split("/")
        up = down = 0
        node_profiles = []
        i = 0
        while os.path.exists(os.path.join(d, f"link{i}")):
            u, dn = map(int, open(os.path.join(d, f"link{i}")).read().split())
            up += u
            down += dn
            node_profiles.append(open(os.path.join(d, f"profile{i}")).read().strip())
            i += 1
        nodes = w["nodes"]
        samples = [n.get("samples", 0) for n in nodes]
        mean = sum(samples) / len(samples) if samples else 0
        curve = w["curve"]
        r = {
            "profile": profile, "method": method,
            "time_to_target_s": w["time_to_target"],
            # first crossings of lower marks too, for links where nothing reaches the target in the run
            "time_to_s": {f"{m:.2f}": next((c["t"] for c in curve if c["accuracy"] >= m), None)
                          for m in (0.3, 0.5, 0.6, 0.7, 0.8)},
            "final_accuracy": w["final_accuracy"],
            "final_version": w["final_version"],
            "best_sampled_accuracy": max((c["accuracy"] for c in curve), default=None),
            "curve_test_images": w.get("curve_test_images", 1000),
            "resent": sum(n.get("resent", 0) for n in nodes),
            "refused": sum(n.get("refused", 0) for n in nodes),
            "refused_by": dict(sum((collections.Counter(n.get("refused_by", {})) for n in nodes), collections.Counter())),
            "uplink_bytes": up, "downlink_bytes": down,
            "update_payload_bytes": sum(n.get("update_bytes", 0) for n in nodes),
            "messages": sum(n.get("messages", 0) for n in nodes),
            "models_in": sum(n.get("models_in", 0) for n in nodes),
            "samples_per_node": samples,
            "nodes_reported": len(nodes), "nodes": i,
            "node_profiles": node_profiles,
            # the slowest node's work against the mean: 1.0 = everyone did the same, 0.2 = a fifth
            "slowest_share": (min(samples) / mean) if mean > 0 else None,
            "held_back": sum(n.get("held_back", 0) for n in nodes),
            "wait_seconds": [round(n.get("wait_seconds", 0), 1) for n in nodes],
            "per_node": [{"node_id": n.get("node_id"), "profile": node_profiles[n.get("node_id", 0)] if n.get("node_id", 0) < len(node_profiles) else None,
                          "samples": n.get("samples"), "messages": n.get("messages"), "update_bytes": n.get("update_bytes")}
                         for n in nodes],
            "curve": curve,
        }
        runs[(profile, method)] = r
    return runs


def plot(report, profile, runs, target):
    lines = []
    images = 1000
    for (p, m), r in sorted(runs.items()):
        if p != profile or not r["curve"]:
            continue
        images = r.get("curve_test_images", images)
        path = os.path.join(report, f"field-{profile}-{m}.dat")
        with open(path, "w") as f:
            for c in r["curve"]:
                f.write(f'{c["t"]:.2f} {c["accuracy"]:.4f}\n')
        lines.append(f"'{path}' using 1:2 with lines lw 2 title '{m}'")
    if not lines:
        return None
    png = os.path.join(report, f"field-{profile}.png")
    script = (f"set terminal pngcairo size 900,540; set output '{png}';"
              f"set title 'field testbed, {profile}: test accuracy ({images:,} images) against wall time';"
              f"set xlabel 'wall time (s)'; set ylabel 'test accuracy'; set yrange [0:1]; set grid; set key bottom right;"
              f"set arrow from graph 0, first {target} to graph 1, first {target} nohead dt 2;"
              f"plot " + ", ".join(lines))
    try:
        subprocess.run(["gnuplot", "-e", script], check=True)
    except (OSError, subprocess.CalledProcessError) as e:
        print(f"report: no plot for {profile}: {e}", file=sys.stderr)
        return None
    return png


def main():
    p = argparse.ArgumentParser()
    p.add_argument("report")
    p.add_argument("--nodes", type=int)
    p.add_argument("--duration", type=float)
    p.add_argument("--target", type=float)
    p.add_argument("--command", default="")
    a = p.parse_args()
    runs = load_runs(a.report)
    profiles = sorted({k[0] for k in runs}, key=lambda x: ["datacenter", "lte", "congested-iot", "flaky", "mixed"].index(x)
                      if x in ["datacenter", "lte", "congested-iot", "flaky", "mixed"] else 99)
    dense_dc = runs.get(("datacenter", "dense"))
    dense_rounds_needed = None
    if dense_dc and dense_dc["time_to_target_s"] is not None:
        for c in dense_dc["curve"]:
            if c["accuracy"] >= a.target:
                dense_rounds_needed = c["version"]
                break
    comparisons = {}
    for prof in profiles:
        d, t, f = runs.get((prof, "dense")), runs.get((prof, "twostep")), runs.get((prof, "fedavg"))
        c = {}
        if d and t and t["time_to_target_s"]:
            if d["time_to_target_s"]:
                c["dense_over_twostep"] = d["time_to_target_s"] / t["time_to_target_s"]
            else:
                c["dense_over_twostep_at_least"] = a.duration / t["time_to_target_s"]
                if dense_rounds_needed and d["final_version"] > 0:
                    projected = dense_rounds_needed * a.duration / d["final_version"]
                    c["dense_projected_time_to_target_s"] = projected
                    c["dense_over_twostep_projected"] = projected / t["time_to_target_s"]
        if f and t and t["time_to_target_s"]:
            c["fedavg_time_to_target_s"] = f["time_to_target_s"]
            c["twostep_sooner_than_fedavg"] = f["time_to_target_s"] is None or t["time_to_target_s"] < f["time_to_target_s"]
        if d and t and d["final_accuracy"] is not None and t["final_accuracy"] is not None:
            c["final_accuracy_twostep_minus_dense_points"] = 100 * (t["final_accuracy"] - d["final_accuracy"])
        # At the highest mark two-step reached here: how much sooner than each other method (a
        # lower bound, "at_least", where the other never reached it in the run).
        if t:
            marks = [m for m, v in t["time_to_s"].items() if v is not None]
            if marks:
                m = max(marks, key=float)
                c["mark"] = float(m)
                for other in ("dense", "fedavg", "topk"):
                    o = runs.get((prof, other))
                    if not o:
                        continue
                    if o["time_to_s"][m] is not None:
                        c[f"{other}_over_twostep_at_mark"] = o["time_to_s"][m] / t["time_to_s"][m]
                    else:
                        c[f"{other}_over_twostep_at_mark_at_least"] = a.duration / t["time_to_s"][m]
        comparisons[prof] = c
    pngs = {prof: plot(a.report, prof, runs, a.target) for prof in profiles}
    out = {"command": a.command, "nodes": a.nodes, "duration_s": a.duration, "target": a.target,
           "dense_rounds_to_target_on_datacenter": dense_rounds_needed,
           "comparisons": comparisons, "plots": pngs,
           "runs": [runs[k] for k in sorted(runs)]}
    json.dump(out, open(os.path.join(a.report, "field.json"), "w"), indent=1)

    md = [f"Field testbed: {a.nodes} nodes, {a.duration:g} s per run, target {a.target:.2f} "
          f"(`{a.command.strip()}`)", ""]
    md.append("| profile | method | time to target (s) | to 0.60 (s) | to 0.70 (s) | final acc. (10k) | uplink MB | downlink MB | messages | slowest node's share |")
    md.append("|---|---|---|---|---|---|---|---|---|---|")
    for prof in profiles:
        for m in ["dense", "fedavg", "topk", "twostep"]:
            r = runs.get((prof, m))
            if not r:
                continue
            ttt = f'{r["time_to_target_s"]:.1f}' if r["time_to_target_s"] is not None else f"not in {a.duration:g}"
            share = f'{r["slowest_share"]:.2f}' if r["slowest_share"] is not None else "-"
            t60, t70 = (r["time_to_s"][k] for k in ("0.60", "0.70"))
            fmt = lambda t: "-" if t is None else f"{t:.1f}"
            md.append(f'| {prof} | {m} | {ttt} | {fmt(t60)} | {fmt(t70)} | {r["final_accuracy"]:.4f} | {r["uplink_bytes"] / 1e6:.2f} | '
                      f'{r["downlink_bytes"] / 1e6:.2f} | {r["messages"]} | {share} |')
    md.append("")
    for prof, c in comparisons.items():
        if c:
            md.append(f"- {prof}: " + ", ".join(f"{k} = {v:.2f}" if isinstance(v, float) else f"{k} = {v}" for k, v in c.items()))
    text = "\n".join(md) + "\n"
    open(os.path.join(a.report, "field.md"), "w").write(text)
    print(text)


if __name__ == "__main__":
    main()
