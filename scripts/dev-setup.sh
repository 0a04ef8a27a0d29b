#!/usr/bin/env bash
# First-run generation of the files conf/ringmail.dev.yaml names, for
# `make run`. Idempotent: an existing file is left as it is, so that the
# certificate, keys, token and password stay the same across runs.
#
# Usage: scripts/dev-setup.sh [VAR_DIR]     (default: var/ beside conf/)
#
# Creates, under VAR_DIR:
#   tls/cert.pem, tls/key.pem   self-signed certificate for localhost
#   dkim/example.test.pem       RSA-2048 DKIM key (selector "dev")
#   admin.token                 random admin API token
#   users.yaml                  one user "dev", password hashed with yescrypt
#   dev-password.txt            the dev user's clear password (printed too)
#   spool/, log/                spool and delivery-log directories
set -euo pipefail

repo_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
var_dir="${1:-$repo_dir/var}"

for tool in openssl mkpasswd; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "dev-setup: $tool is missing (run: make deps)" >&2
    exit 1
  fi
done

# Secrets are readable by their owner only.
umask 077
mkdir -p "$var_dir/tls" "$var_dir/dkim" "$var_dir/spool" "$var_dir/log"

if [ ! -s "$var_dir/tls/cert.pem" ] || [ ! -s "$var_dir/tls/key.pem" ]; then
  openssl req -x509 -newkey rsa:2048 -nodes -sha256 -days 3650 \
    -subj "/CN=localhost" \
    -addext "subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1" \
    -keyout "$var_dir/tls/key.pem.tmp" -out "$var_dir/tls/cert.pem.tmp" 2>/dev/null
  mv "$var_dir/tls/key.pem.tmp" "$var_dir/tls/key.pem"
  mv "$var_dir/tls/cert.pem.tmp" "$var_dir/tls/cert.pem"
  echo "dev-setup: created $var_dir/tls/cert.pem (self-signed, localhost)"
fi

if [ ! -s "$var_dir/dkim/example.test.pem" ]; then
  openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 \
    -out "$var_dir/dkim/example.test.pem.tmp" 2>/dev/null
  mv "$var_dir/dkim/example.test.pem.tmp" "$var_dir/dkim/example.test.pem"
  echo "dev-setup: created $var_dir/dkim/example.test.pem (RSA-2048)"
fi

if [ ! -s "$var_dir/admin.token" ]; then
  openssl rand -hex 32 > "$var_dir/admin.token.tmp"
  mv "$var_dir/admin.token.tmp" "$var_dir/admin.token"
  echo "dev-setup: created $var_dir/admin.token"
fi

if [ ! -s "$var_dir/users.yaml" ]; then
  password="$(openssl rand -hex 12)"
  hash="$(printf '%s' "$password" | mkpasswd -m yescrypt --stdin)"
  printf '%s\n' "$password" > "$var_dir/dev-password.txt"
  {
    echo "# Users allowed to AUTH on submission listeners (crypt(3) hashes)."
    echo "# Add one with: mkpasswd -m yescrypt"
    echo "- name: dev"
    echo "  password: '$hash'"
  } > "$var_dir/users.yaml.tmp"
  mv "$var_dir/users.yaml.tmp" "$var_dir/users.yaml"
  echo "dev-setup: created $var_dir/users.yaml with the user dev"
fi

if [ -s "$var_dir/dev-password.txt" ]; then
  echo "dev-setup: submission login: dev / $(cat "$var_dir/dev-password.txt")"
fi
