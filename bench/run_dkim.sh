#!/bin/sh
# bench/run_dkim.sh — end-to-end DKIM signing benchmark: ringmaild (signs
# in-process) vs Postfix + OpenDKIM milter, in the same run, and ringmaild vs
# the RSA signing capacity `openssl speed` measures. Same driver as
# run_inbound.sh (bench/run_inbound.py --dkim); see bench/README.md.
#   sudo bench/run_dkim.sh                             # RSA-2048, about 4-5 minutes
#   sudo bench/run_dkim.sh --dkim-algorithm ed25519    # Ed25519
#   sudo bench/run_dkim.sh --quick                     # smoke test, under a minute
# Needs root, build/release (ringmaild, smtp_latency_tool), the postfix and
# opendkim packages, and python3-dkim (to verify signatures; optional).
exec "$(dirname "$0")/run_inbound.sh" --dkim "$@"
