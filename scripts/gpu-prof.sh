#!/bin/bash
# Profiling on the lent GPU machine: build (as scripts/gpu-run.sh), then the benches named in $PROF
# ("size:args" items, comma-separated), each with RWKV_VK_PROFILE=1 (every dispatch timed), into $OUT/prof.txt.
set -uo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-gpu-out}"; mkdir -p "$out"; out=$(cd "$out" && pwd)
source .gl/activate.sh
cmake -S . -B build-gpu -G Ninja -DCMAKE_BUILD_TYPE=Release -DRWKV_WERROR=OFF -DRWKV_BUILD_TESTS=OFF \
  -DVulkan_INCLUDE_DIR=/tmp/vk/usr/include -DVulkan_LIBRARY=/tmp/vk/usr/lib/x86_64-linux-gnu/libvulkan.so > "$out/cmake.txt" 2>&1 || { tail -20 "$out/cmake.txt"; exit 1; }
cmake --build build-gpu -j 16 --target rwkv > "$out/build.txt" 2>&1 || { tail -30 "$out/build.txt"; exit 1; }
IFS=',' read -ra items <<< "${PROF:-}"
for it in "${items[@]}"; do
  env=${it%%|*}; args=${it#*|}
  echo "== $env rwkv bench $args" | tee -a "$out/prof.txt"
  env $env timeout 200 ./build-gpu/rwkv bench --backend vulkan --json $args >> "$out/prof.txt" 2>&1
  grep -h '"test"' "$out/prof.txt" | tail -1 | cut -c1-300
done
