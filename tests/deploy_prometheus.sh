#!/bin/sh
# The Prometheus files in deploy/prometheus: the scrape config and the rules load, and the alert
# rules' unit tests pass (promtool, from Debian's prometheus package).
set -e
cd "$(dirname "$0")/../deploy/prometheus"
promtool check config prometheus.yml
promtool check rules swarmlens-rules.yml
promtool test rules swarmlens-rules.test.yml
echo "1 passed, 0 failed"
