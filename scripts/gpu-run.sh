#!/bin/bash
# One call on the lent GPU machine (see ../shared/docs/GPU-MACHINE.md): build, run the test suite on the
# NVIDIA card (Vulkan required), then the benchmark rows of the speed issue (BENCH_SIZES; BENCH_BATCH=1
# adds batch 256, BENCH_OPTIONS=1 the F16-activation prefill rows and the generation options: sparse FFN,
# layer norms in their own dispatches, the one-dispatch step). Prepare here with
#   ../shared/tools/gpu-prep && scripts/gpu-run.sh --stage
# and run there with carry [".gl", ".shared"] and the command `scripts/gpu-run.sh`.
# Logs and JSON go to $OUT (or ./gpu-out).
set -uo pipefail
cd "$(dirname "$0")/.."
if [ "${1:-}" = "--stage" ]; then
  rm -rf .shared && mkdir -p .shared
  cp -r ../shared/models ../shared/cases ../shared/lora ../shared/states ../shared/vocab ../shared/pth .shared/
  du -sh .shared
  exit 0
fi
out="${OUT:-gpu-out}"
mkdir -p "$out"
out=$(cd "$out" && pwd)
source .gl/activate.sh
vulkaninfo --summary > "$out/vulkaninfo.txt" 2>&1
grep -E "deviceName|driverVersion|apiVersion" "$out/vulkaninfo.txt" | head -6
export RWKV_SHARED="$PWD/.shared" RWKV_REQUIRE_VULKAN=1
rm -f build-gpu/CMakeCache.txt
cmake -S . -B build-gpu -G Ninja -DCMAKE_BUILD_TYPE=Release -DRWKV_WERROR=OFF -DRWKV_SHARED_DIR="$RWKV_SHARED" \
  -DVulkan_INCLUDE_DIR=/tmp/vk/usr/include -DVulkan_LIBRARY=/tmp/vk/usr/lib/x86_64-linux-gnu/libvulkan.so > "$out/cmake.txt" 2>&1 || { tail -20 "$out/cmake.txt"; exit 1; }
cmake --build build-gpu -j 16 > "$out/build.txt" 2>&1; grep -c "warning:" "$out/build.txt" | sed "s/^/compiler warnings (gcc of the device): /"; test -x build-gpu/rwkv || { tail -30 "$out/build.txt"; exit 1; }
./build-gpu/rwkv devices
echo "== tests"
(cd build-gpu && ctest -j 8 --output-on-failure > "$out/ctest.txt" 2>&1); rc=$?
tail -15 "$out/ctest.txt"
echo "== bench"
sizes="${BENCH_SIZES:-0.1b 1.5b 7.2b}"
for s in $sizes; do
  timeout 240 ./build-gpu/rwkv bench --backend vulkan --size "$s" -p 512 -n 128 -r 3 --json 2>>"$out/bench.err" | tee -a "$out/bench.json"
done
if [ -n "${BENCH_BATCH:-}" ]; then
  timeout 240 ./build-gpu/rwkv bench --backend vulkan --size 1.5b -p 0 -n 32 --batch 256 --json 2>>"$out/bench.err" | tee -a "$out/bench.json"
fi
# the options, each row tagged by the env it ran with: F16 activations (prefill), and for generation the
# sparse FFN value, the layer norms in their own dispatches, the one-dispatch step
if [ -n "${BENCH_OPTIONS:-}" ]; then
  for s in $sizes; do
    RWKV_VK_COOPMAT=fp16 timeout 240 ./build-gpu/rwkv bench --backend vulkan --size "$s" -p 512 -n 0 -r 3 --json \
      2>>"$out/bench.err" | sed 's/^{/{"env":"RWKV_VK_COOPMAT=fp16",/' | tee -a "$out/bench.json"
    for env in RWKV_VK_SPARSE_FFN=1 RWKV_VK_MIX_FUSE=0 RWKV_VK_PERSISTENT=sm; do
      env $env timeout 240 ./build-gpu/rwkv bench --backend vulkan --size "$s" -p 0 -n 128 -r 3 --json \
        2>>"$out/bench.err" | sed "s/^{/{\"env\":\"$env\",/" | tee -a "$out/bench.json"
    done
  done
fi
tail -5 "$out/bench.err"
exit $rc
