#!/usr/bin/env bash
# The deploy/ files as shipped: systemd-analyze verify finds nothing to say about the units (keys,
# specifiers, executables: pointed at this build), and the example configs parse into the
# programs' options (the camera's into its pipeline; the broker's up to connecting to NATS).
# Usage: deploy_check.sh SWARMLENS SWARMLENS_BROKER
set -euo pipefail
swarmlens=$1 broker=$2
deploy=$(cd "$(dirname "$0")/../deploy" && pwd)
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
for u in "$deploy"/*.service; do
  sed -e "s|/usr/bin/swarmlens-broker|$broker|; s|/usr/bin/swarmlens |$swarmlens |" "$u" > "$tmp/$(basename "$u")"
done
cp "$tmp/swarmlens-camera@.service" "$tmp/swarmlens-camera@front.service"
out=$(systemd-analyze verify --man=no "$tmp/swarmlens-camera@front.service" "$tmp/swarmlens-broker.service" 2>&1) || {
  echo "systemd-analyze verify failed:"; echo "$out"; exit 1; }
[ -z "$out" ] || { echo "systemd-analyze verify has warnings:"; echo "$out"; exit 1; }
echo "ok   units verify"

desc=$("$swarmlens" --config "$deploy/camera.conf.example" camera --print-pipeline --nats-credentials /run/x/nats)
for want in "libcamerasrc" 'nats-url="tls://broker.example.net:4222"' 'nats-credentials="/run/x/nats"' \
            "label=3" "idle-policy=load" "udpsink host=192.0.2.10 port=5000"; do
  case "$desc" in *"$want"*) ;; *) echo "camera.conf.example: no '$want' in: $desc"; exit 1 ;; esac
done
echo "ok   camera.conf.example"

# The broker parses its config, then fails on the first thing a test machine lacks (the CA file).
err=$("$broker" --config "$deploy/broker.conf.example" --stats 0 2>&1) && { echo "broker started?"; exit 1; }
case "$err" in
  *"TLS CA /etc/swarmlens/ca.pem"*) echo "ok   broker.conf.example" ;;
  *) echo "broker.conf.example: unexpected: $err"; exit 1 ;;
esac
