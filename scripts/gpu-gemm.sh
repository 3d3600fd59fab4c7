#!/bin/bash
# Tensor-core GEMM tuning on the lent GPU machine: builds rwkv-vk-gemm (bench/vk_gemm.c) and runs it
# once per item of $GEMM (argument lists separated by ';'), output to stdout and $OUT/gemm.txt.
# Run there with carry [".gl"] and the command `GEMM='--tile ...;--fp16 --tile ...' scripts/gpu-gemm.sh`.
set -uo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-gpu-out}"; mkdir -p "$out"; out=$(cd "$out" && pwd)
source .gl/activate.sh
cmake -S . -B build-gpu -G Ninja -DCMAKE_BUILD_TYPE=Release -DRWKV_WERROR=OFF \
  -DVulkan_INCLUDE_DIR=/tmp/vk/usr/include -DVulkan_LIBRARY=/tmp/vk/usr/lib/x86_64-linux-gnu/libvulkan.so > "$out/cmake.txt" 2>&1 || { tail -20 "$out/cmake.txt"; exit 1; }
cmake --build build-gpu -j 16 --target rwkv_vk_gemm > "$out/build.txt" 2>&1 || { tail -30 "$out/build.txt"; exit 1; }
IFS=';' read -ra items <<< "${GEMM:-}"
for it in "${items[@]}"; do
  echo "== rwkv-vk-gemm $it" | tee -a "$out/gemm.txt"
  # shellcheck disable=SC2086
  timeout 300 ./build-gpu/rwkv-vk-gemm $it 2>&1 | tee -a "$out/gemm.txt"
done
