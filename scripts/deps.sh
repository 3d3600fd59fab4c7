#!/bin/sh
# Installs the Debian 12 packages rwkv-c builds and tests with, when any is missing (needs root or sudo).
# Vulkan headers, the loader, lavapipe (Mesa's CPU Vulkan driver), glslc and the validation layer make
# the Vulkan backend build and testable without a GPU; clang + compiler-rt give the fuzzers.
set -eu
pkgs="build-essential cmake ninja-build pkg-config clang libclang-rt-14-dev libvulkan-dev mesa-vulkan-drivers
glslc glslang-tools spirv-tools vulkan-tools vulkan-validationlayers"
missing=""
for p in $pkgs; do
  dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
echo "deps: installing:$missing"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO=sudo
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
