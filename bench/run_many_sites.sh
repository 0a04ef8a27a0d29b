#!/bin/sh
# bench/run_many_sites.sh — entry point of the many-sites delivery benchmark:
# 1,000 domains over 100 MX hosts (dnsmasq, smtp-sink), 5% 4xx, 1% 5xx, one
# rate-limited MX; Postfix and ringmaild interleaved in one run. All options
# go to bench/run_many_sites.py; see bench/README.md.
#   sudo bench/run_many_sites.sh            # 20,000 x 4 KiB, 3 reps
#   sudo bench/run_many_sites.sh --quick    # 1 rep of 3,000
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
exec /usr/bin/python3 "$(dirname "$0")/run_many_sites.py" "$@"
