#!/usr/bin/env python3
"""Any model, any camera: swarmlens-broker serves a mobilenet of 96x96 RGB frames and 5 classes named
by an image folder's sub-folders (--test-data), two `swarmlens camera` nodes play their own image
folders (one background family each) through swarmsrc and train it over a real nats-server, and the
served model beats chance on held-out images. A node of another model (the grey cnn, 10 classes) is
refused with a message naming both models, and says so on its console at once. The images are made
here: a coloured square per class on a per-site background, with noise (PPM, which OpenCV reads)."""
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import time

from local_nats import start_nats

exe, broker_exe = sys.argv[1], os.environ["SWARMLENS_BROKER_EXE"]
CLASSES = ["red", "green", "blue", "yellow", "white"]
COLOURS = [(220, 40, 40), (40, 200, 40), (40, 60, 220), (230, 220, 40), (235, 235, 235)]


def image(path, colour, background, rng, size=48):
    x0, y0 = rng.randrange(0, size // 2), rng.randrange(0, size // 2)
    side = rng.randrange(size // 3, size // 2)
    px = bytearray()
    for y in range(size):
        for x in range(size):
            inside = x0 <= x < x0 + side and y0 <= y < y0 + side
            base = colour if inside else background
            px += bytes(max(0, min(255, c + rng.randrange(-30, 31))) for c in base)
    with open(path, "wb") as f:
        f.write(b"P6\n%d %d\n255\n" % (size, size) + bytes(px))


def folder(root, per_class, background, seed):
    rng = random.Random(seed)
    for name, colour in zip(CLASSES, COLOURS):
        os.makedirs(f"{root}/{name}", exist_ok=True)
        for i in range(per_class):
            image(f"{root}/{name}/{i:03d}.ppm", colour, background, rng)
    return root


def camera(tmp, name, args, duration):
    return subprocess.run([exe, "camera", "--duration", str(duration), "--stats-interval-ms", "2000",
                           "--idle-policy", "always", "--output", "none", "--model-id", "colours"] + args,
                          capture_output=True, text=True, timeout=duration + 90)


with tempfile.TemporaryDirectory() as tmp:
    sites = [folder(f"{tmp}/site{i}", 24, bg, i) for i, bg in enumerate([(60, 60, 60), (110, 80, 50)])]
    held_out = folder(f"{tmp}/held-out", 12, (60, 60, 60), 9)  # new images, site 0's background
    nats, url = start_nats(f"{tmp}/js")
    broker = None
    try:
        broker = subprocess.Popen([broker_exe, "--nats", url, "--model-id", "colours", "--model", "mobilenet",
                                   "--input-width", "96", "--input-height", "96", "--test-data", held_out,
                                   "--stats", "2", "--eval-interval-ms", "1000", "--publish-interval-ms", "300",
                                   "--server-lr", "0.5",  # two nodes, each update applied at half
                                   "--signing-key", f"{tmp}/broker.key"],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(3)
        assert broker.poll() is None, broker.communicate()
        key = f"{tmp}/broker.key.pub"
        common = ["--nats", url, "--model-key", key, "--model", "mobilenet", "--input-width", "96",
                  "--input-height", "96", "--classes", "5"]
        nodes = [subprocess.Popen([exe, "camera", "--duration", "60", "--stats-interval-ms", "5000", "--idle-policy",
                                   "always", "--output", "none", "--model-id", "colours", "--node-id", str(i),
                                   "--trigger-age", "1", "--batch-size", "8", "--density", "0.01", "--learning-rate", "0.1", "--source",
                                   f"swarmsrc location={site} loop=true is-live=true fps-n=30 width=96 height=96 format=RGB"]
                                  + common, stderr=subprocess.PIPE, text=True) for i, site in enumerate(sites)]
        # Meanwhile a node of another model: its updates are refused and it hears the served model
        # is not its own, with both descriptions.
        other = camera(tmp, "other", ["--nats", url, "--model-key", key, "--node-id", "7", "--label", "3", "--trigger-age", "1",
                                      "--source", "videotestsrc is-live=true ! video/x-raw,width=64,height=64,framerate=20/1"], 12)
        assert "the model served is mobilenet 3x96x96, 5 classes (blue, green, red, white, ...)" in other.stderr, other.stderr
        assert "this side runs cnn 1x28x28, 10 classes" in other.stderr, other.stderr
        assert "The broker refused update" in other.stderr and "layout_mismatch" in other.stderr, other.stderr
        for n in nodes:
            _, err = n.communicate(timeout=120)
            assert n.returncode == 0, err
            stats = [l for l in err.splitlines() if "| connected | updates sent" in l]
            assert stats and " refused 0 " in stats[-1] and "delivered 0 " not in stats[-1], err
        time.sleep(3)
    finally:
        if broker and broker.poll() is None:
            broker.send_signal(signal.SIGTERM)
        out, err = broker.communicate(timeout=30) if broker else ("", "")
        for p in [nats]:
            p.kill()
            p.wait()
    assert "serving model 'colours' (mobilenet 3x96x96, 5 classes (blue, green, red, white, ...))" in err, err
    accuracies = [float(a) for a in re.findall(r"accuracy (\d\.\d+)", out)]
    versions = [int(v) for v in re.findall(r"model v(\d+)", out)]
    print(f"served model v{max(versions)}, held-out accuracy over the run: {accuracies}")
    # 5 classes, 60 held-out images: chance is 0.2 (one standard deviation 0.05). Two asynchronous
    # nodes are noisy from one evaluation to the next: the mean of the last five. (Measured here,
    # three runs: 0.49, 0.52, 0.60 after 60 s; the two nodes have seen ~200 batches of 8 each.)
    assert len(accuracies) >= 5 and sum(accuracies[-5:]) / 5 > 0.3, out
    print("ok")
