#!/bin/bash
# Vulkan performance work in one device call (see PERF.md beside this): scripts/gpu-run.sh (build, the
# whole test suite with Vulkan required, the benchmark rows), then the experiments named in $VK_EXPERIMENTS
# (default: all below), their output in $OUT/extra.txt. Run there with carry [".gl", ".shared"] and the
# command `src/backend/vulkan/bench-device.sh`.
set -uo pipefail
cd "$(dirname "$0")/../../.."
out="${OUT:-gpu-out}"
mkdir -p "$out"
scripts/gpu-run.sh
rc=$?
source .gl/activate.sh
x="$out/extra.txt"
b() { # b ENV... -- ARGS: one bench with settings, its stderr (profiles) and JSON into extra.txt
  local envs=()
  while [ "$1" != "--" ]; do envs+=("$1"); shift; done
  shift
  echo "== ${envs[*]} rwkv bench $*" >> "$x"
  env "${envs[@]}" timeout 200 ./build-gpu/rwkv bench --backend vulkan --json "$@" >> "$x" 2>&1
}
for e in ${VK_EXPERIMENTS:-prof host tiles}; do
  case $e in
  prof)
    b RWKV_VK_PROFILE=1 -- --size 0.1b -p 0 -n 16 -r 1
    b RWKV_VK_PROFILE=1 -- --size 1.5b -p 512 -n 8 -r 1
    b RWKV_VK_PROFILE=1 -- --size 7.2b -p 512 -n 4 -r 1 ;;
  host)
    b RWKV_VK_PROFILE=2 -- --size 0.1b -p 0 -n 64 -r 1
    b RWKV_VK_PROFILE=2 RWKV_VK_SPIN_US=0 -- --size 0.1b -p 0 -n 64 -r 1 ;;
  tiles)
    for v in "RWKV_VK_CM_TILE=small" "RWKV_VK_CM_TILE=big" "RWKV_VK_COOPMAT=fp16"; do
      b "$v" -- --size 7.2b -p 512 -n 0 -r 2
    done
    b RWKV_VK_CM_TILE=big -- --size 1.5b -p 512 -n 0 -r 2 ;;
  serial)
    b RWKV_VK_PROFILE=2 RWKV_VK_SERIAL=1 -- --size 0.1b -p 0 -n 64 -r 1
    b RWKV_VK_PROFILE=2 -- --size 1.5b -p 0 -n 64 -r 1
    b RWKV_VK_PROFILE=2 RWKV_VK_SERIAL=1 -- --size 1.5b -p 0 -n 64 -r 1 ;;
  pserial)
    b RWKV_VK_SERIAL=1 -- --size 1.5b -p 512 -n 0 -r 2
    b RWKV_VK_SERIAL=1 -- --size 7.2b -p 512 -n 0 -r 2 ;;
  fp16)
    b RWKV_VK_COOPMAT=fp16 -- --size 7.2b -p 512 -n 0 -r 2
    b RWKV_VK_COOPMAT=fp16 -- --size 1.5b -p 512 -n 0 -r 2 ;;
  esac
done
grep -h '"test"' "$x" | sed 's/"model":"synth v7 \([^ ]*\)[^"]*"/\1/' | cut -c1-400 | tail -40
exit $rc
