#!/bin/sh
# The main job on a fresh machine: install what is missing, build, and run the generation benchmark
# (a built-in synthetic RWKV-7 0.1B model when no --model is given). Extra arguments go to `rwkv gen`.
set -eu
cd "$(dirname "$0")/.."
scripts/deps.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build
vocab=../shared/vocab/rwkv_vocab_v20230424.txt
if [ $# -eq 0 ] && [ -f "$vocab" ]; then
  set -- --vocab "$vocab" --prompt "The RWKV language model" -n 500
fi
exec ./build/rwkv gen "$@"
