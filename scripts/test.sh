#!/usr/bin/env bash
# Build and run the whole test suite three times: plain, ASan+UBSan, and TSan (the
# concurrency-labelled tests). Each test starts its own redis-server on a private socket.
#   scripts/test.sh            all three builds
#   scripts/test.sh plain      one of: plain asan tsan
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
jobs=$(nproc 2>/dev/null || echo 2)
flavors=("$@")
[ ${#flavors[@]} -gt 0 ] || flavors=(plain asan tsan)

run_flavor() {
  local name=$1 dir=build-$1; shift
  echo "=== tiercache tests: $name ==="
  cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo "$@" >/dev/null
  cmake --build "$dir" -j "$jobs"
}

for f in "${flavors[@]}"; do
  case "$f" in
    plain)
      run_flavor plain
      (cd build-plain && ctest --output-on-failure)
      scripts/check-install.sh build-plain ;;
    asan)
      # jemalloc off: ASan must see every entry allocation to catch misuse.
      # NDEBUG off: the invariants' asserts (l1.c, l2.c) run in this flavor
      run_flavor asan -DTC_SANITIZE="address;undefined" -DTC_WITH_JEMALLOC=OFF -DTC_BUILD_BENCH=OFF \
        -DCMAKE_C_FLAGS_RELWITHDEBINFO="-O2 -g"
      (cd build-asan && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
         UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 ctest --output-on-failure) ;;
    tsan)
      run_flavor tsan -DTC_SANITIZE=thread -DTC_WITH_JEMALLOC=OFF -DTC_BUILD_BENCH=OFF
      # Some kernels' mmap randomization breaks TSan's shadow layout: run without ASLR
      # where the sandbox allows it. Criterion cannot run under TSan (see tests/CMakeLists.txt).
      norand=()
      setarch "$(uname -m)" -R true 2>/dev/null && norand=(setarch "$(uname -m)" -R)
      (cd build-tsan && TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1" \
         "${norand[@]}" ctest --output-on-failure -L concurrency) ;;
    *) echo "unknown flavor $f (plain, asan, tsan)" >&2; exit 2 ;;
  esac
done
echo "=== tiercache tests: all requested flavors passed ==="
