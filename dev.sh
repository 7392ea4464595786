#!/usr/bin/env bash
# Swarmlens developer entry point. Installs what is missing (Debian packages), builds, then:
#   ./dev.sh demo    the main job: `swarmlens demo` (nats-server, broker and 4 camera nodes, 60 s,
#                    report in report/)
#   ./dev.sh test    the whole test suite; ends with a "N passed, N failed" line
#   ./dev.sh build   just install and build
# Extra arguments after `demo` go to `swarmlens demo` (e.g. --nodes 8 --duration 300 --baseline).
set -euo pipefail
cd "$(dirname "$0")"
BUILD=${SWARMLENS_BUILD:-build}

ensure_built() {
  scripts/setup-deps
  if [ ! -f "$BUILD/build.ninja" ]; then
    meson setup "$BUILD" >/dev/null
  fi
  # Quiet when it builds; the compiler's messages when it does not (ninja prints them on stdout).
  local out
  if ! out=$(ninja -C "$BUILD" 2>&1); then
    printf '%s\n' "$out" | grep -v '^\[[0-9]*/[0-9]*\] ' >&2
    echo "dev.sh: the build in $BUILD failed" >&2
    exit 1
  fi
}

cmd=${1:-demo}
[ $# -gt 0 ] && shift
case "$cmd" in
  build) ensure_built ;;
  demo)
    ensure_built
    exec "$BUILD/pipeline/swarmlens" demo --report report "$@"
    ;;
  test)
    ensure_built
    rc=0
    meson test -C "$BUILD" --num-processes 1 --print-errorlogs "$@" || rc=$?
    # One plain closing line for CI, counted from meson's own JSON log.
    python3 - "$BUILD/meson-logs/testlog.json" <<'PY'
import json, sys
passed = failed = skipped = 0
for line in open(sys.argv[1]):
    r = json.loads(line)["result"]
    if r in ("OK", "EXPECTEDFAIL"): passed += 1
    elif r == "SKIP": skipped += 1
    else: failed += 1
print(f"{passed} passed, {failed} failed" + (f", {skipped} skipped" if skipped else ""))
PY
    exit $rc
    ;;
  *) echo "usage: $0 {demo|test|build} [args]" >&2; exit 2 ;;
esac
