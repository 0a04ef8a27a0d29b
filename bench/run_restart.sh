#!/bin/sh
# bench/run_restart.sh — restart with 1,000,000 queued recipients: time to
# READY=1 and to the first delivery. Options go to bench/run_restart.py.
exec /usr/bin/python3 "$(dirname "$0")/run_restart.py" "$@"
