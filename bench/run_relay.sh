#!/bin/sh
# bench/run_relay.sh — entry point of the end-to-end relay benchmark:
# smtp-source -> {nothing, Postfix, ringmaild} -> smtp-sink, interleaved in one
# run. All options go to bench/run_relay.py; see bench/README.md.
#   sudo bench/run_relay.sh                   # 20,000 x 4 KiB and 3,000 x 100 KiB, 3 reps
#   sudo bench/run_relay.sh --quick           # smoke test, 1 rep of 2,000 x 4 KiB
#   sudo bench/run_relay.sh --skip-ringmail   # wire and Postfix only
# Needs root, build/release/ringmaild (or $RINGMAILD) and the postfix package
# (smtp-source, smtp-sink, a private Postfix).
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
exec /usr/bin/python3 "$(dirname "$0")/run_relay.py" "$@"
