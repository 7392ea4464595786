#!/usr/bin/env python3
"""Runs `swarmlens demo` on a tiny budget (with the dense baseline) and checks the report folder; then
interrupts a second demo as Ctrl-C would and checks that it stops cleanly and leaves no process."""
import csv
import json
import os
import signal
import struct
import subprocess
import sys
import tempfile
import time

exe = sys.argv[1]


def processes_with(text):
    """Command lines of running processes that contain text."""
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            cmd = open(f"/proc/{pid}/cmdline", "rb").read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in cmd and str(os.getpid()) != pid:
            found.append(cmd)
    return found


def png_size(path):
    with open(path, "rb") as f:
        head = f.read(24)
    assert head[:8] == b"\x89PNG\r\n\x1a\n", path
    return struct.unpack(">II", head[16:24])


with tempfile.TemporaryDirectory() as tmp:
    report = f"{tmp}/report"
    model_id = f"smoke{os.getpid()}"
    subprocess.run([exe, "demo", "--nodes", "2", "--duration", "15", "--report", report, "--baseline",
                    "--model-id", model_id, "--quiet"], check=True, timeout=300)
    assert not processes_with(model_id), processes_with(model_id)  # nodes and brokers are gone

    for name in ("accuracy.csv", "accuracy.png", "overlay.png", "dashboard.png", "summary.json", "summary.txt"):
        assert os.path.getsize(f"{report}/{name}") > 0, name
    assert png_size(f"{report}/accuracy.png") == (1200, 480)
    assert png_size(f"{report}/dashboard.png") == (1280, 1000)  # the live dashboard, by headless Chromium
    assert "dashboard.png" in open(f"{report}/summary.txt").read()
    assert png_size(f"{report}/overlay.png") == (280, 280)

    rows = list(csv.DictReader(open(f"{report}/accuracy.csv")))
    for method in ("twostep", "dense"):
        mine = [r for r in rows if r["method"] == method]
        assert len(mine) >= 3, (method, len(mine))
        for r in mine:
            assert 0.0 <= float(r["test_accuracy"]) <= 1.0, r
        # Time and uplink bytes only grow.
        assert all(float(a["seconds"]) <= float(b["seconds"]) for a, b in zip(mine, mine[1:])), method
        assert all(int(a["uplink_bytes"]) <= int(b["uplink_bytes"]) for a, b in zip(mine, mine[1:])), method

    summary = json.load(open(f"{report}/summary.json"))
    runs = {r["method"]: r for r in summary["runs"]}
    assert set(runs) == {"twostep", "dense"}, runs.keys()
    for name, r in runs.items():
        assert r["steps"] > 0 and r["updates"] > 0, (name, r)
        # What the nodes counted as sent is what the aggregator received.
        assert r["uplink_bytes_sent"] == r["uplink_bytes_received"], (name, r)
        assert r["rejected"] == {}, (name, r["rejected"])
        assert 0.0 <= r["test_accuracy"] <= 1.0, (name, r)
    # Compression: far fewer bytes than dense gradients, per step, in the same run and against the dense run.
    assert runs["twostep"]["ratio_vs_dense"] > 5, runs["twostep"]
    assert summary["measured_ratio_vs_dense_run"] > 5, summary
    assert runs["dense"]["ratio_vs_dense"] < 2.5, runs["dense"]  # fp16 values: about 2x under fp32
    # Even a 15-second run learns something (chance is 0.1).
    assert max(runs["twostep"]["test_accuracy"], runs["dense"]["test_accuracy"]) > 0.2, runs

    # Ctrl-C: the demo stops every process in order, writes its report and exits 0.
    report2 = f"{tmp}/interrupted"
    model_id2 = f"smokeint{os.getpid()}"
    demo = subprocess.Popen([exe, "demo", "--nodes", "2", "--duration", "120", "--report", report2,
                             "--model-id", model_id2, "--quiet"])
    deadline = time.time() + 60
    while time.time() < deadline and len(processes_with(f"{model_id2}-twostep")) < 3:  # broker, 2 nodes
        time.sleep(0.2)
    time.sleep(3)
    demo.send_signal(signal.SIGINT)
    assert demo.wait(timeout=60) == 0
    assert not processes_with(model_id2), processes_with(model_id2)
    summary = json.load(open(f"{report2}/summary.json"))
    assert summary["runs"][0]["interrupted"] is True
    assert summary["runs"][0]["seconds"] < 60

    # A broker that cannot start (no such test data) is noticed at once, not after a timeout; a report
    # folder that cannot be written is an error before anything runs.
    t0 = time.time()
    r = subprocess.run([exe, "demo", "--nodes", "1", "--duration", "30", "--report", f"{tmp}/nodata",
                        "--data", f"{tmp}/no-such-data", "--quiet"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and "swarmlens-broker exited at start" in r.stderr, r.stderr
    assert time.time() - t0 < 15, time.time() - t0
    r = subprocess.run([exe, "demo", "--duration", "5", "--report", "/proc/swarmlens-report", "--quiet"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and "cannot write the report in /proc/swarmlens-report" in r.stderr, r.stderr

print("demo smoke: ok")
