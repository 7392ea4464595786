#!/usr/bin/env bash
# The .deb as a user gets it: installs it on this machine (root; its Depends are what
# scripts/setup-deps installed), runs the installed programs and plugin from the installed files
# only, then removes it. Usage: tests/deb_check.sh dist/swarmlens_VERSION_ARCH.deb
# Prints "N passed, N failed" for its checks.
set -uo pipefail
deb=$1
passed=0 failed=0
check() {  # check NAME COMMAND...: one check, its output kept for a failure
  local name=$1; shift
  if out=$("$@" 2>&1); then passed=$((passed + 1)); else failed=$((failed + 1)); echo "deb-check: FAILED: $name"; echo "$out" | tail -5; fi
}
check "dpkg -i" dpkg -i "$deb"
# Installed files only: no build tree on the plugin path, a registry of its own.
export GST_PLUGIN_PATH= GST_REGISTRY=$(mktemp -u /tmp/deb-check-registry.XXXXXX)
version=$(dpkg-deb -f "$deb" Version)
check "gst-inspect-1.0 swarmtrain" sh -c 'gst-inspect-1.0 swarmtrain | grep -q "Swarmlens trainer"'
check "gst-inspect-1.0 lists the criterion values" sh -c 'gst-inspect-1.0 swarmtrain | grep -q "sampled-topk"'
check "swarmlens --version" sh -c "/usr/bin/swarmlens --version | grep -qx '$version'"
check "swarmlens-broker --version" sh -c "/usr/bin/swarmlens-broker --version | grep -qx '$version'"
check "swarmlens-bench runs" sh -c '/usr/bin/swarmlens bench --help | grep -q compression'
check "pkg-config swarmlens-meta" pkg-config --exists swarmlens-meta
check "the meta header" test -f "$(pkg-config --variable=includedir swarmlens-meta)/swarmlens-1.0/swarmlens/swarmlens-meta.h"
check "dpkg -r" dpkg -r swarmlens
check "removed" sh -c '! test -e /usr/bin/swarmlens'
rm -f "$GST_REGISTRY"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
