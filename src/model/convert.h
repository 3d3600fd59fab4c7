/* Conversion of an official RWKV checkpoint (the PyTorch state dict of RWKV-LM / ChatRWKV, e.g. read by
 * rwkv_pth_open) to web-rwkv's safetensors layout, as web-rwkv's assets/scripts/convert_safetensors.py
 * does it. */
#ifndef RWKV_MODEL_CONVERT_H
#define RWKV_MODEL_CONVERT_H

#include "io/tensor_table.h"

/* Builds `out`, a new table that maps no file (free it with rwkv_table_free), from the tensors of `in`:
 *  - names: "time_faaaa" -> "time_first", "time_maa" -> "time_mix", "lora_A" -> "lora.0", "lora_B" ->
 *    "lora.1", then lower case (ASCII);
 *  - the last two dimensions of w1, w2, a1, a2, g1, g2, v1, v2, time_mix_w1/w2, time_decay_w1/w2,
 *    time_state and lora.0 tensors are swapped (data transposed), so that every matrix is [out][in];
 *  - a gated v5.1 model (gate.weight, per-head time_decay) gets time_decay and time_faaaa repeated to
 *    [H, C/H]; v5.0 ("5v1": ln_x, no gate) is left as it is, like the script does;
 *  - every tensor becomes `dtype` (F16 reproduces the script's .half() bit for bit; F32 and BF16 are
 *    extensions), rounding to nearest even;
 *  - tensors sorted by name (the order safetensors writes), metadata {"format": "pt"}.
 * Two input names that end up equal are an error (RWKV_ERR_MODEL), as are non-float input tensors. */
rwkv_status rwkv_convert_to_webrwkv(const struct rwkv_tensor_table *in, enum rwkv_dtype dtype,
                                    struct rwkv_tensor_table *out, struct rwkv_error *err);

#endif
