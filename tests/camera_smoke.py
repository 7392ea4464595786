#!/usr/bin/env python3
"""`swarmlens camera` as the systemd unit runs it: options from a config file, NATS secrets from a
0600 credentials file, a real nats-server that demands a password and a real swarmlens-broker. The
camera's updates reach the broker (its model version moves); SIGTERM stops the node cleanly (exit 0,
checkpoint written); a wrong password and a config without a source fail with clear messages."""
import json
import os
import re
import signal
import subprocess
import sys
import socket
import tempfile
import time
import urllib.request

from local_nats import start_nats

exe, broker_exe = sys.argv[1], os.environ["SWARMLENS_BROKER_EXE"]


def secret(path, text):
    with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as f:
        f.write(text)
    return path


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def config(path, **kv):
    with open(path, "w") as f:
        f.write("# swarmlens camera node\n[camera]\n")
        for k, v in kv.items():
            f.write(f'{k.replace("_", "-")} = "{v}"\n')
    return path


with tempfile.TemporaryDirectory() as tmp:
    nats, url = start_nats(f"{tmp}/js", "--user", "swarm", "--pass", "pw-7f3a")
    broker = None
    try:
        good = secret(f"{tmp}/node.cred", "swarm:pw-7f3a\n")
        dashboard_port = free_port()
        broker = subprocess.Popen([broker_exe, "--nats", url, "--credentials", good, "--model-id", "cam",
                                   "--stats", "1", "--publish-interval-ms", "200",
                                   "--dashboard-listen", f"127.0.0.1:{dashboard_port}"],
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        time.sleep(1.5)
        ckpt = f"{tmp}/node.swm"
        metrics_port = free_port()
        source = "videotestsrc is-live=true pattern=ball ! video/x-raw,width=320,height=240,framerate=30/1"
        conf = config(f"{tmp}/node.conf", source=source, nats=url, nats_credentials=good, model_id="cam",
                      node_id=7, label=3, idle_policy="always", trigger_age=1, checkpoint=ckpt, output="none",
                      stats_interval_ms=2000, holdout_every=5, metrics_listen=f"127.0.0.1:{metrics_port}",
                      snapshot_interval=2)
        node = subprocess.Popen([exe, "--config", conf, "camera"], stderr=subprocess.PIPE, text=True)
        time.sleep(9)
        # Its Prometheus metrics, as Prometheus would scrape them: promtool passes them, and they say
        # what the stats lines say.
        text = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10).read().decode()
        check = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, text=True)
        assert check.returncode == 0, (check.stdout, check.stderr, text)
        sample = dict(l.rsplit(" ", 1) for l in text.splitlines() if l and not l.startswith("#"))
        labels = '{model_id="cam",node="7"}'
        for name in ("frames_total", "training_steps_total", "updates_delivered_total", "uplink_bytes_total",
                     "downlink_bytes_total", "frames_per_second"):
            assert float(sample["swarmlens_camera_" + name + labels]) > 0, (name, text)
        assert sample['swarmlens_camera_training_state{model_id="cam",node="7",state="training"}'] == "1", text
        assert float(sample["process_resident_memory_bytes"]) > 0, text
        # The overlay it offers (snapshot-interval) is on the broker's dashboard: a JPEG, and the
        # node's row says when it came.
        state = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{dashboard_port}/api/state", timeout=10).read())
        row = [n for n in state["nodes"] if n["node"] == 7]
        assert row and row[0].get("snapshot", 0) > time.time() - 10, state
        jpeg = urllib.request.urlopen(f"http://127.0.0.1:{dashboard_port}/snapshot/7.jpg", timeout=10).read()
        assert jpeg[:3] == b"\xff\xd8\xff" and len(jpeg) <= 64 * 1024, len(jpeg)
        time.sleep(3)
        node.send_signal(signal.SIGTERM)  # as systemctl stop does
        _, err = node.communicate(timeout=30)
        assert node.returncode == 0, (node.returncode, err)
        assert re.search(r"swarmlens camera: [1-9]\d* overlay snapshots sent", err), err
        assert os.path.getsize(ckpt) > 1_000_000, "no checkpoint written at stop"
        # A stats line per interval: frames, steps, model version, connection, updates, bytes.
        lines = re.findall(r"swarmlens camera: train: frames (\d+) steps (\d+) model v\d+ \| connected \| "
                           r"updates sent \d+ delivered (\d+) refused 0 \| bytes up (\d+) down (\d+)", err)
        assert len(lines) >= 4, err
        assert int(lines[-1][2]) > 0 and int(lines[-1][3]) > 0 and int(lines[-1][4]) > 0, lines[-1]
        # holdout-every: the camera's accuracy on frames it held out, in its stats line...
        assert re.search(r"held-out accuracy [01]\.\d+ \(last [1-9]\d* frames\)", err), err

        # A node of another model (12 classes against the broker's 10) hears its updates refused, and
        # says so at once with the reason.
        conf = config(f"{tmp}/other.conf", source=source, nats=url, nats_credentials=good, model_id="cam",
                      node_id=8, classes=12, label=11, idle_policy="always", trigger_age=1, output="none",
                      duration=8)
        r = subprocess.run([exe, "--config", conf, "camera"], capture_output=True, text=True, timeout=60)
        assert "The broker refused update" in r.stderr and "layout_mismatch" in r.stderr, r.stderr
        assert re.search(r"refused [1-9]\d* \(last: layout_mismatch\)", r.stderr), r.stderr
        time.sleep(2)
        broker.send_signal(signal.SIGTERM)
        out, _ = broker.communicate(timeout=20)
        versions = [int(v) for v in re.findall(r"model v(\d+)", out)]
        assert versions and max(versions) > 0, out  # the camera's updates were merged
        # ...and, the broker having no test data, the accuracy it reports is the nodes' own.
        assert re.search(r"accuracy [01]\.\d+ \(nodes' own held-out frames: 1 nodes, [1-9]\d* frames\)", out), out
        print(f"camera -> broker: model v{max(versions)}")

        # No broker any more: the update sent last is never answered. The warning the trainer posts
        # while stopping reaches the console. (Label 5: the kept model learnt label 3 on this very
        # picture until its loss is 0, and a zero gradient sends nothing.)
        conf = config(f"{tmp}/alone.conf", source=source, nats=url, nats_credentials=good, model_id="cam",
                      node_id=9, label=5, idle_policy="always", trigger_age=1, output="none", duration=6)
        r = subprocess.run([exe, "--config", conf, "camera"], capture_output=True, text=True, timeout=60)
        assert "The last update was not acknowledged" in r.stderr, r.stderr

        wrong = secret(f"{tmp}/wrong.cred", "swarm:guess\n")
        conf = config(f"{tmp}/wrong.conf", source=source, nats=url, nats_credentials=wrong, output="none")
        r = subprocess.run([exe, "--config", conf, "camera"], capture_output=True, text=True, timeout=60)
        assert r.returncode == 1 and "Authorization" in r.stderr, (r.returncode, r.stderr)

        # One version everywhere; a config file key no option takes is an error, not ignored.
        for cmd in ([exe, "--version"], [broker_exe, "--version"]):
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
            assert r.returncode == 0 and re.fullmatch(r"\d+\.\d+\.\d+\s*", r.stdout), (cmd, r)
        conf = config(f"{tmp}/typo.conf", source=source, outptu="none")
        r = subprocess.run([exe, "--config", conf, "camera", "--print-pipeline"], capture_output=True, text=True, timeout=30)
        assert r.returncode != 0 and "outptu" in r.stderr + r.stdout, r

        r = subprocess.run([exe, "camera", "--source", "videotestsrc", "--metrics-listen", "9465"], capture_output=True,
                           text=True, timeout=30)
        assert r.returncode != 0 and "--metrics-listen 9465: no host" in r.stderr + r.stdout, r

        conf = config(f"{tmp}/nosource.conf", output="none")
        r = subprocess.run([exe, "--config", conf, "camera"], capture_output=True, text=True, timeout=60)
        assert r.returncode != 0 and "--source is required" in r.stderr + r.stdout, r
        print("ok")
    finally:
        for p in (broker, nats):
            if p and p.poll() is None:
                p.kill()
                p.wait()
