#!/usr/bin/env python3
"""`swarmlens export` end to end: a node's checkpoint (written by swarmtrain in a real pipeline) and the
same model served live by swarmlens-broker from a real nats-server give the same ONNX file; a model
that does not fit the asked shape is refused with a clear message; a checkpoint describes its model
(any registry model, input size and class count), so export needs no shape options. OpenCV's agreement with LibTorch
on exported files is tested in trainer-onnx."""
import os
import struct
import subprocess
import sys
import tempfile
import time
import zlib

from local_nats import start_nats

exe, broker = sys.argv[1], os.environ["SWARMLENS_BROKER_EXE"]


def on_fp16_grid(src, dst):
    """Writes the fp32 snapshot `src` (format 3, docs/wire-format.md) with every parameter rounded to
    the nearest fp16 value (-0 as +0), as the model stream publishes it."""
    b = bytearray(open(src, "rb").read())
    assert b[:5] == b"SWLM\x03", b[:5]
    at = 6 + b[5] + 16
    (count,) = struct.unpack_from("<Q", b, at)
    at += 8
    assert b[at] == 0, "an fp32 snapshot"
    at += 1
    for i in range(count):
        (v,) = struct.unpack_from("<f", b, at + 4 * i)
        g = struct.unpack("<e", struct.pack("<e", max(-65504.0, min(65504.0, v))))[0]
        struct.pack_into("<f", b, at + 4 * i, g if g != 0 else 0.0)
    struct.pack_into("<I", b, len(b) - 4, zlib.crc32(bytes(b[:-4])))
    open(dst, "wb").write(bytes(b))


with tempfile.TemporaryDirectory() as tmp:
    ckpt = f"{tmp}/node.swm"
    subprocess.run(["gst-launch-1.0", "-q", "swarmsrc", "num-buffers=320", "fps-n=0", "!", "swarmtrain",
                    f"checkpoint={ckpt}", "drop-when-busy=false", "batch-size=32", "!", "fakesink"],
                   check=True, timeout=120)
    from_file = f"{tmp}/file.onnx"
    subprocess.run([exe, "export", "--snapshot", ckpt, "--model-id", "smoke", "-o", from_file], check=True, timeout=60)
    data = open(from_file, "rb").read()
    assert len(data) > 1_500_000, len(data)  # ~0.42 M fp32 weights
    for needle in (b"swarmlens", b"class_names", b"Ankle boot", b"probabilities", b"input_mean"):
        assert needle in data, needle

    bad = subprocess.run([exe, "export", "--snapshot", ckpt, "--model", "mobilenet", "-o", f"{tmp}/bad.onnx"],
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 1 and "the snapshot holds cnn 1x28x28, 10 classes" in bad.stderr, bad.stderr
    assert not os.path.exists(f"{tmp}/bad.onnx")

    # A checkpoint describes its model: a mobilenet of another input size and class count exports
    # without repeating them.
    mob = f"{tmp}/mob.swm"
    subprocess.run(["gst-launch-1.0", "-q", "videotestsrc", "num-buffers=16", "!", "video/x-raw,width=64,height=48", "!",
                    "swarmtrain", "model=mobilenet", "input-width=32", "input-height=24", "classes=5", "label=4",
                    f"checkpoint={mob}", "drop-when-busy=false", "batch-size=8", "!", "fakesink"], check=True, timeout=120)
    r = subprocess.run([exe, "export", "--snapshot", mob, "-o", f"{tmp}/mob.onnx"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and "mobilenet 3x24x32, 5 classes" in r.stderr, r.stderr
    r = subprocess.run([exe, "export", "--snapshot", mob, "--input-width", "96", "-o", f"{tmp}/mob2.onnx"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and "the snapshot holds mobilenet 3x24x32, 5 classes" in r.stderr, r.stderr

    server, url = start_nats(f"{tmp}/js")
    served = None
    try:
        served = subprocess.Popen([broker, "--nats", url, "--model-id", "smoke", "--snapshot", ckpt],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        live = f"{tmp}/live.onnx"
        deadline = time.time() + 30
        while True:
            r = subprocess.run([exe, "export", "--nats-url", url, "--model-id", "smoke", "-o", live],
                               capture_output=True, text=True, timeout=60)
            if r.returncode == 0 or time.time() > deadline:
                break
            time.sleep(0.5)
        assert r.returncode == 0, r.stderr
        # The nodes hold the model on the fp16 grid (the model stream): the checkpoint's, rounded.
        rounded = f"{tmp}/rounded.swm"
        on_fp16_grid(ckpt, rounded)
        subprocess.run([exe, "export", "--snapshot", rounded, "--model-id", "smoke", "-o", f"{tmp}/rounded.onnx"],
                       check=True, timeout=60)
        assert open(live, "rb").read() == open(f"{tmp}/rounded.onnx", "rb").read(), \
            "the live model's export differs from the checkpoint's on the fp16 grid"
        assert open(live, "rb").read() != data  # (the grid is not the checkpoint's fp32)
        missing = subprocess.run([exe, "export", "--nats-url", url, "--model-id", "nobody", "-o", f"{tmp}/x.onnx"],
                                 capture_output=True, text=True, timeout=60)
        assert missing.returncode == 1 and "no model" in missing.stderr, missing.stderr
    finally:
        for p in (served, server):
            if p:
                p.terminate()
                p.wait(timeout=10)
print("export smoke: ok")
