#!/usr/bin/env python3
"""Runs `swarmlens bench compression` on a tiny budget and checks its JSON report."""
import json
import subprocess
import sys
import tempfile

exe = sys.argv[1]
with tempfile.TemporaryDirectory() as tmp:
    out = f"{tmp}/bench.json"
    subprocess.run([exe, "bench", "compression", "--preset", "quick", "--train-limit", "1600",
                    "--test-limit", "500", "--epochs", "1", "--json", out], check=True)
    report = json.load(open(out))

methods = report["methods"]
assert set(methods) == {"dense", "topk", "twostep", "fedavg"}, methods.keys()
for name, m in methods.items():
    for key in ("accuracy", "uplink_bytes", "messages", "ratio_vs_dense", "wall_seconds",
                "compress_seconds", "train_seconds"):
        assert key in m, f"{name}: missing {key}"
    assert 0.0 <= m["accuracy"] <= 1.0, (name, m["accuracy"])
    assert m["uplink_bytes"] > 0 and m["messages"] > 0, name
    assert m["rejected"] == 0, (name, m["rejected"])
    assert m["train_seconds"] > 0 and m["wall_seconds"] >= m["train_seconds"], name

assert methods["dense"]["ratio_vs_dense"] == 1.0
# Even on a tiny run, training learns and sparse methods send far fewer bytes than dense.
assert methods["dense"]["accuracy"] > 0.3, methods["dense"]["accuracy"]
assert methods["topk"]["ratio_vs_dense"] > 20, methods["topk"]["ratio_vs_dense"]
assert methods["twostep"]["ratio_vs_dense"] > 20, methods["twostep"]["ratio_vs_dense"]
assert methods["twostep"]["messages"] < methods["topk"]["messages"]
assert methods["fedavg"]["messages"] < methods["dense"]["messages"]
print("bench smoke: ok", {k: round(v["accuracy"], 3) for k, v in methods.items()})
