#!/bin/sh
# Runs a test binary with the Khronos validation layer and fails if the layer reports anything.
# Without the layer installed it says so and passes, unless RWKV_REQUIRE_VALIDATION is set (CI sets it).
set -u
if ! ls /usr/share/vulkan/explicit_layer.d/*validation* >/dev/null 2>&1; then
  echo "vk-validate: the Khronos validation layer is not installed"
  [ -z "${RWKV_REQUIRE_VALIDATION:-}" ]
  exit $?
fi
log=$(mktemp)
VK_INSTANCE_LAYERS=VK_LAYER_KHRONOS_validation "$@" >"$log" 2>&1
rc=$?
tail -n 3 "$log"
if grep -qE "Validation (Error|Warning)|VUID-" "$log"; then
  grep -E "Validation (Error|Warning)|VUID-" "$log" | head -n 20
  echo "vk-validate: the validation layer reported the messages above"
  rc=1
fi
rm -f "$log"
exit $rc
