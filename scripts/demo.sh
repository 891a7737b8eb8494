#!/usr/bin/env bash
# Quick start, command 1: install what is missing, build, then run the example and the
# default bench comparison, each against a throwaway redis-server started here (on a private
# unix socket) and stopped afterwards. Extra arguments go to tiercache-bench.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DTC_BUILD_TESTS=OFF >/dev/null
cmake --build build -j "$(nproc 2>/dev/null || echo 2)"

dir=$(mktemp -d /tmp/tiercache-demo-XXXXXX)
redis-server --port 0 --unixsocket "$dir/redis.sock" --unixsocketperm 700 --save "" \
  --appendonly no --dir "$dir" --logfile "$dir/redis.log" --daemonize no &
redis_pid=$!
trap 'kill $redis_pid 2>/dev/null; wait $redis_pid 2>/dev/null; rm -rf "$dir"' EXIT
for _ in $(seq 100); do [ -S "$dir/redis.sock" ] && break; sleep 0.05; done
echo "== examples/cache_aside (cache-aside over a 20 ms source) =="
TIERCACHE_REDIS_URL="unix://$dir/redis.sock" build/examples/cache_aside
if [ -x build/bench/tiercache-bench ]; then
  echo "== tiercache-bench (starts its own throwaway redis-server) =="
  build/bench/tiercache-bench "$@"
fi
