#!/bin/bash
# One call on the lent GPU machine for the one-dispatch generation step (token7.comp): build, test_vulkan
# (and test_hooks), then tg128 at each size in BENCH_SIZES with the step on (default) and off
# (RWKV_VK_PERSISTENT=0), both in the same call (TOKEN_ENVS: other settings for the second row, e.g.
# RWKV_VK_PROFILE=2 for the phase times; NO_TESTS=1 skips the tests). Carry [".gl", ".shared"] (scripts/gpu-run.sh --stage).
set -uo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-gpu-out}"; mkdir -p "$out"; out=$(cd "$out" && pwd)
source .gl/activate.sh
export RWKV_SHARED="$PWD/.shared" RWKV_REQUIRE_VULKAN=1
cmake -S . -B build-gpu -G Ninja -DCMAKE_BUILD_TYPE=Release -DRWKV_WERROR=OFF -DRWKV_SHARED_DIR="$RWKV_SHARED" \
  -DVulkan_INCLUDE_DIR=/tmp/vk/usr/include -DVulkan_LIBRARY=/tmp/vk/usr/lib/x86_64-linux-gnu/libvulkan.so > "$out/cmake.txt" 2>&1 || { tail -20 "$out/cmake.txt"; exit 1; }
cmake --build build-gpu -j 16 > "$out/build.txt" 2>&1 || { tail -30 "$out/build.txt"; exit 1; }
./build-gpu/rwkv devices
if [ -z "${NO_TESTS:-}" ]; then
  echo "== test_vulkan"
  (cd build-gpu && timeout 300 ./test_vulkan > "$out/test_vulkan.txt" 2>&1); echo "rc=$?"
  grep -E "one dispatch|CHECK failed|checks," "$out/test_vulkan.txt" | head -20
fi
echo "== bench"
for s in ${BENCH_SIZES:-0.1b 1.5b 7.2b}; do
  for env in RWKV_VK_PERSISTENT=0 ${TOKEN_ENVS:-RWKV_VK_PERSISTENT_DEFAULT=1}; do
    env $env timeout 200 ./build-gpu/rwkv bench --backend vulkan --size "$s" -p 0 -n 128 -r 3 --json 2>>"$out/bench.err" |
      sed "s/^{/{\"env\":\"$env\",/" | tee -a "$out/bench.json" | cut -c1-400
  done
done
grep -h "one-dispatch step\|rwkv:   [A-Z]\|rwkv:   head" "$out/bench.err" | head -40
tail -2 "$out/bench.err"
