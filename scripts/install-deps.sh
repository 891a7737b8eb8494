#!/usr/bin/env bash
# Install the Debian packages tiercache builds, tests and benches with, when missing.
# Safe to run again: it installs only what dpkg does not already report as installed.
set -euo pipefail
pkgs=(build-essential cmake pkg-config libhiredis-dev uthash-dev libjemalloc-dev
      libcriterion-dev redis-server redis-tools zlib1g-dev clang-format libsqlite3-dev)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all packages present"
  exit 0
fi
echo "install-deps: installing ${missing[*]}"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
# The Debian package starts a system redis-server; tiercache's tests and bench start their
# own on private sockets and never need it.
