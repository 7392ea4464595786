#!/usr/bin/env python3
"""The C example of reading Swarmlens' metas (samples/c/read-metas.c, built from the public header
only) runs against the built plugin: every frame reaches the sink with its true label and a
prediction, and the last line counts them."""
import re
import subprocess
import sys

r = subprocess.run([sys.argv[1], "160"], capture_output=True, text=True, timeout=120)
assert r.returncode == 0, r.stderr
frames = re.findall(r"^frame (\d+): label (\d+), predicted (\d+) \((0\.\d\d|1\.00)\), model v(\d+)$", r.stdout, re.M)
total = re.search(r"^(\d+) frames, (\d+) classified, (\d+) correct$", r.stdout, re.M)
assert total and int(total.group(1)) == 160, r.stdout[-500:]
assert int(total.group(2)) == 160 and len(frames) == 160, r.stdout[-500:]  # a prediction on every frame
assert all(0 <= int(f[1]) < 10 and 0 <= int(f[2]) < 10 for f in frames)
print(total.group(0))
