#!/bin/bash
# tests/systemd_verify.sh BINARY — checks systemd/ringmaild.service with
# `systemd-analyze verify`. The unit is copied into a temp dir with its
# ringmaild path replaced by BINARY (verify checks that ExecStart exists).
# Exit 0 only when verify succeeds and prints nothing at all.
set -u
bin=${1:?usage: systemd_verify.sh PATH_TO_RINGMAILD}
here=$(cd "$(dirname "$0")/.." && pwd)
unit=$here/systemd/ringmaild.service
if [ ! -x "$bin" ]; then echo "systemd_verify: $bin is not an executable" >&2; exit 1; fi
if ! command -v systemd-analyze >/dev/null; then echo "systemd_verify: no systemd-analyze" >&2; exit 1; fi
bin=$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
sed "s|/usr/local/sbin/ringmaild|$bin|g" "$unit" > "$tmp/ringmaild.service"
grep -q "ExecStart=$bin " "$tmp/ringmaild.service" || { echo "systemd_verify: ExecStart not found in $unit" >&2; exit 1; }
out=$(cd "$tmp" && SYSTEMD_LOG_COLOR=0 systemd-analyze verify --man=no "$tmp/ringmaild.service" 2>&1)
rc=$?
if [ $rc -ne 0 ] || [ -n "$out" ]; then
  echo "systemd-analyze verify failed (exit $rc):" >&2
  echo "$out" >&2
  exit 1
fi
echo "systemd-analyze verify: ringmaild.service clean"
