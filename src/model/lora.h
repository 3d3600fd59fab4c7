/* Load-time weight edits: LoRA merging and matrix precision changes. */
#ifndef RWKV_MODEL_LORA_H
#define RWKV_MODEL_LORA_H

#include "model/model.h"

/* Merges each LoRA file in order into the model's tensor table (W += alpha/r * B A^T; vectors
 * replaced), see ../shared/cases/README.md. Merged tensors become owned float32 tensors of the table. */
rwkv_status rwkv_lora_merge_table(struct rwkv_tensor_table *t, const struct rwkv_lora_spec *loras, int n,
                                  struct rwkv_error *err);

/* Converts every matrix to `dtype` (F32, F16 or BF16), re-pointing views. */
rwkv_status rwkv_model_cast_matrices(struct rwkv_model *m, enum rwkv_dtype dtype, struct rwkv_error *err);

#endif
