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

    # The colour sites (swarmlens scenes): a node per site, the last site held out.
    scenes = f"{tmp}/scenes"
    subprocess.run([exe, "scenes", "-o", scenes, "--sites", "3", "--width", "32", "--height", "32",
                    "--train-per-site", "96", "--test-per-site", "32", "--sheet", f"{tmp}/sheet.png"], check=True)
    sites_json = f"{tmp}/sites.json"
    subprocess.run([exe, "bench", "compression", "--data", scenes, "--model", "mobilenet", "--nodes", "2",
                    "--epochs", "1", "--batch-size", "16", "--methods", "dense,twostep", "--json", sites_json],
                   check=True)
    sites = json.load(open(sites_json))
    # Frames 4x the model's input: swarmclassify's own downscale loses no more than videoscale's.
    size_json = f"{tmp}/input-size.json"
    subprocess.run([exe, "bench", "input-size", "--epochs", "1", "--test-limit", "3000", "--json", size_json],
                   check=True)
    input_size = json.load(open(size_json))
    no_held_out = subprocess.run([exe, "bench", "compression", "--data", scenes, "--nodes", "3"],
                                 capture_output=True, text=True)

methods = report["methods"]
assert set(methods) == {"dense", "topk", "twostep", "fedavg"}, methods.keys()
for name, m in methods.items():
    for key in ("accuracy", "uplink_bytes", "downlink_bytes", "total_bytes", "messages", "ratio_vs_dense",
                "downlink_ratio_vs_dense", "wall_seconds", "compress_seconds", "train_seconds"):
        assert key in m, f"{name}: missing {key}"
    assert 0.0 <= m["accuracy"] <= 1.0, (name, m["accuracy"])
    assert m["uplink_bytes"] > 0 and m["messages"] > 0, name
    assert m["rejected"] == 0, (name, m["rejected"])
    assert m["train_seconds"] > 0 and m["wall_seconds"] >= m["train_seconds"], name
    assert m["diverged"] is False, (name, m["diverged"])
    # Both directions: every node's uplink plus what each of the nodes received.
    assert m["total_bytes"] == m["uplink_bytes"] + m["downlink_bytes"] * report["config"]["nodes"], name

assert methods["dense"]["ratio_vs_dense"] == 1.0
# Even on a tiny run, training learns and sparse methods send far fewer bytes than dense.
assert methods["dense"]["accuracy"] > 0.3, methods["dense"]["accuracy"]
assert methods["topk"]["ratio_vs_dense"] > 20, methods["topk"]["ratio_vs_dense"]
assert methods["twostep"]["ratio_vs_dense"] > 20, methods["twostep"]["ratio_vs_dense"]
assert methods["twostep"]["messages"] < methods["topk"]["messages"]
# The model comes down compressed too: the model stream against the whole model each step.
assert methods["twostep"]["downlink_ratio_vs_dense"] > 20, methods["twostep"]["downlink_ratio_vs_dense"]
assert methods["fedavg"]["messages"] < methods["dense"]["messages"]
config = sites["config"]
assert config["data"] == "sites" and config["input"] == [3, 32, 32], config
assert [p.rsplit("/", 1)[1] for p in config["train_sites"]] == ["site-0", "site-1"], config
assert [p.rsplit("/", 1)[1] for p in config["held_out_sites"]] == ["site-2"], config
assert config["test_images"] == 32 and config["seen_test_images"] == 64, config  # test splits
for name, m in sites["methods"].items():
    assert 0.0 <= m["accuracy"] <= 1.0 and 0.0 <= m["seen_accuracy"] <= 1.0, (name, m)
    assert m["rejected"] == 0 and m["uplink_bytes"] > 0, (name, m)
assert sites["methods"]["twostep"]["uplink_bytes"] < sites["methods"]["dense"]["uplink_bytes"]
assert no_held_out.returncode != 0 and "at least one site must be held out" in no_held_out.stderr, no_held_out.stderr
for key in ("model_size", "element_downscale", "videoscale"):
    assert input_size[key]["frames"] == 3000, input_size
assert input_size["model_size"]["accuracy"] > 0.6, input_size
assert input_size["element_downscale"]["accuracy"] >= input_size["videoscale"]["accuracy"] - 0.005, input_size
print("bench smoke: ok", {k: round(v["accuracy"], 3) for k, v in methods.items()})
