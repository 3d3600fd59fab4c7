#!/bin/sh
# The whole test suite: release build + ctest (CPU and, on lavapipe, Vulkan), the same under
# AddressSanitizer + UndefinedBehaviorSanitizer, and every fuzzer for a bounded time.
# Env: RWKV_SHARED (default ../shared), FUZZ_SECONDS (default 60 per target), JOBS.
set -eu
cd "$(dirname "$0")/.."
scripts/deps.sh
export RWKV_SHARED="${RWKV_SHARED:-$(cd .. && pwd)/shared}"
jobs="${JOBS:-$(nproc)}"
fuzz_seconds="${FUZZ_SECONDS:-60}"
# lavapipe is the only Vulkan device in CI: require the Vulkan tests to run when a driver is installed
if [ -e /usr/share/vulkan/icd.d/lvp_icd.x86_64.json ] || [ -n "${VK_DRIVER_FILES:-}" ]; then
  export RWKV_REQUIRE_VULKAN=1
  export RWKV_REQUIRE_VALIDATION=1 # scripts/deps.sh installs the layer with the driver
fi

echo "== release build + tests"
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DRWKV_SHARED_DIR="$RWKV_SHARED" >/dev/null
cmake --build build -j "$jobs"
(cd build && ctest --output-on-failure -j "$jobs")

echo "== sanitizer build (ASan + UBSan) + tests"
cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=Debug -DRWKV_SANITIZE=ON -DRWKV_SHARED_DIR="$RWKV_SHARED" >/dev/null
cmake --build build-asan -j "$jobs"
(cd build-asan && ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 ctest --output-on-failure -j "$jobs")

echo "== portable build (no SIMD, no threads, no mmap) + the reference and batching tests"
cmake -S . -B build-portable -G Ninja -DCMAKE_BUILD_TYPE=Release -DRWKV_PORTABLE=ON -DRWKV_VULKAN=OFF -DRWKV_SHARED_DIR="$RWKV_SHARED" >/dev/null
cmake --build build-portable -j "$jobs"
(cd build-portable && ctest --output-on-failure -j "$jobs" -R "test_(cases|batch|files|pth_logits|save|lora)$")

echo "== fuzzers (${fuzz_seconds}s each)"
cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=Debug -DCMAKE_C_COMPILER=clang -DRWKV_FUZZ=ON -DRWKV_VULKAN=OFF >/dev/null
cmake --build build-fuzz -j "$jobs"
for f in build-fuzz/fuzz_*; do
  [ -x "$f" ] || continue
  name=$(basename "$f")
  corpus="build-fuzz/corpus-$name"
  mkdir -p "$corpus"
  # seeds: the start of a real model file (the header is what the parsers see first), and whole small
  # synthetic models of every version for the model builder
  head -c 16384 "$RWKV_SHARED/models/tiny-rwkv-7v0-834K.st" > "$corpus/seed-st"
  if [ "$name" = fuzz_model ]; then
    for v in 4 5 6 7; do
      build/rwkv synth --version $v --layers 1 --embd 32 --head-size 16 --vocab 16 --ffn 64 --out "$corpus/seed-v$v.st" >/dev/null
    done
  fi
  echo "-- $name"
  "$f" -max_total_time="$fuzz_seconds" -rss_limit_mb=2048 -max_len=65536 -print_final_stats=1 "$corpus" 2>&1 | tail -n 4
done
echo "== all tests passed"
