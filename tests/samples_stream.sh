#!/usr/bin/env bash
# The remote view end to end: samples/view-udp.pipeline (the laptop's side, bounded to 40 RTP
# packets) must receive and decode what a camera sample streams to it over loopback UDP. Without
# the stream the viewer never reaches EOS and the check fails on its timeout.
set -euo pipefail
samples=$(cd "$(dirname "$0")/../samples" && pwd)
port=$(python3 -c 'import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
export VIEWER=127.0.0.1 VIEWER_PORT=$port
SAMPLE_OUT=$(mktemp -d) "$samples/run" --check "$samples/view-udp.pipeline" > viewer.log 2>&1 &
viewer=$!
sleep 1
rc=0
for sender in pi-camera jetson-csi; do
  "$samples/run" --check "$samples/$sender.pipeline" || rc=1
done
wait $viewer || rc=1
cat viewer.log
exit $rc
