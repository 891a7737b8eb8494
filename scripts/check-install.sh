#!/usr/bin/env bash
# Install a built tree into a scratch prefix and build an outside program against it three
# ways: CMake find_package (shared and static) and pkg-config. Usage: check-install.sh BUILD
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:?usage: check-install.sh BUILD_DIR}
tmp=$(mktemp -d /tmp/tiercache-install-XXXXXX)
trap 'rm -rf "$tmp"' EXIT
cmake --install "$build" --prefix "$tmp/prefix" >/dev/null
cmake -S tests/install -B "$tmp/consumer" -DCMAKE_PREFIX_PATH="$tmp/prefix" >/dev/null
cmake --build "$tmp/consumer" >/dev/null
LD_LIBRARY_PATH="$tmp/prefix/lib" "$tmp/consumer/consumer_shared"
"$tmp/consumer/consumer_static"
pc="$tmp/prefix/lib/pkgconfig"
# shellcheck disable=SC2046
cc tests/install/consumer.c $(PKG_CONFIG_PATH="$pc" pkg-config --cflags --libs tiercache) \
   -o "$tmp/consumer_pc"
LD_LIBRARY_PATH="$tmp/prefix/lib" "$tmp/consumer_pc"
echo "check-install: CMake (shared, static) and pkg-config consumers work"
