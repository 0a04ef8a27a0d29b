#!/usr/bin/env bash
# Installs every build and test dependency of Ringmail from Debian packages.
# Idempotent and non-interactive; runs apt through sudo when not root.
set -euo pipefail

packages=(
  build-essential cmake ninja-build pkg-config clang libclang-rt-14-dev clang-format
  liburing-dev libssl-dev libc-ares-dev liblmdb-dev lmdb-utils libyaml-cpp-dev
  libspdlog-dev libfmt-dev libsystemd-dev libcrypt-dev libidn2-dev nlohmann-json3-dev
  libgtest-dev libgmock-dev libbenchmark-dev libmicrohttpd-dev libcurl4-openssl-dev zlib1g-dev
  libgmime-3.0-dev
  openssl whois swaks libnet-ssleay-perl libio-socket-ssl-perl postfix dnsmasq-base
  python3 python3-aiosmtpd python3-dkim python3-nacl prometheus
  libmilter-dev opendkim opendkim-tools systemd
)

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "deps: all ${#packages[@]} packages present"
  exit 0
fi

echo "deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
# Postfix is only a benchmark peer and a source of smtp-source/smtp-sink:
# never let its installer configure or start a system MTA.
echo "postfix postfix/main_mailer_type select No configuration" | $SUDO debconf-set-selections
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
