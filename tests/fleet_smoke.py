#!/usr/bin/env python3
"""Runs `swarmlens bench fleet` on a tiny budget and checks its JSON report and plot."""
import json
import os
import subprocess
import sys
import tempfile

exe = sys.argv[1]
with tempfile.TemporaryDirectory() as tmp:
    out, png = f"{tmp}/fleet.json", f"{tmp}/fleet.png"
    subprocess.run([exe, "bench", "fleet", "--nodes", "2,16", "--train-limit", "1600", "--test-limit", "300",
                    "--epochs", "1", "--curve-points", "4", "--json", out, "--plot", png], check=True)
    report = json.load(open(out))
    assert os.path.getsize(png) > 10000, os.path.getsize(png)  # drawn, not an empty file
    bad_mix = subprocess.run([exe, "bench", "fleet", "--nodes", "2", "--devices", "pi4:0.5,toaster:0.5"],
                             capture_output=True, text=True)
    # An unwritable report fails at the start, before minutes of simulation, not at the end.
    unwritable = subprocess.run([exe, "bench", "fleet", "--nodes", "2", "--json", f"{tmp}/no/such/dir/fleet.json"],
                                capture_output=True, text=True, timeout=30)
    too_many = subprocess.run([exe, "bench", "fleet", "--nodes", "64", "--train-limit", "1000"],
                              capture_output=True, text=True)

fleets = report["fleets"]
assert [f["nodes"] for f in fleets] == [2, 16], fleets
for f in fleets:
    # Every update sent is answered: accepted, or refused and counted by reason.
    assert f["updates"] == f["accepted"] + sum(f["refused"].values()), f
    assert f["refused"] == {}, f["refused"]
    # Every node steps through its whole shard: the fleet trains on the same samples whatever its size.
    assert f["steps"] == 1600 // 32 // f["nodes"] * f["nodes"], (f["nodes"], f["steps"])
    assert sum(b["updates"] for b in f["staleness"]) == f["updates"], f["staleness"]
    curve = f["curve"]
    assert len(curve) >= 3 and curve[0]["t"] == 0 and curve[0]["uplink_bytes"] == 0, curve
    assert all(a["t"] <= b["t"] and a["uplink_bytes"] <= b["uplink_bytes"] and a["downlink_bytes"] <= b["downlink_bytes"]
               for a, b in zip(curve, curve[1:])), curve
    assert f["uplink_bytes"] > 0 and f["downlink_bytes"] > 0 and f["model_versions"] > 0, f
    assert 0.0 <= f["final_accuracy"] <= 1.0, f
# The small fleet learns something on 1,600 images; the larger one runs more staleness.
assert fleets[0]["final_accuracy"] > 0.3, fleets[0]["final_accuracy"]
assert bad_mix.returncode != 0 and "unknown device class 'toaster'" in bad_mix.stderr, bad_mix.stderr
assert unwritable.returncode != 0 and "cannot write the --json report" in unwritable.stderr, \
    unwritable.stderr
assert "nodes:" not in unwritable.stderr, unwritable.stderr  # refused before any simulation
assert too_many.returncode != 0 and "less than one batch" in too_many.stderr, too_many.stderr
print("fleet smoke: ok", [(f["nodes"], round(f["final_accuracy"], 3)) for f in fleets])
