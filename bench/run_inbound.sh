#!/bin/sh
# bench/run_inbound.sh — entry point of the end-to-end inbound benchmark
# (`make bench`). All options go to bench/run_inbound.py; see bench/README.md.
# Needs root, a Release build (build/release: ringmaild, smtp_latency_tool)
# and the postfix package (smtp-source, smtp-sink, a private Postfix).
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
exec /usr/bin/python3 "$(dirname "$0")/run_inbound.py" "$@"
