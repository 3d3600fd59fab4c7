/* Synthetic-model options shared by `rwkv synth`, `rwkv gen` and `rwkv bench` (implemented in
 * cmd_synth.c): parsing them, and opening a session on a model built in memory. */
#ifndef RWKV_TOOLS_SYNTH_CLI_H
#define RWKV_TOOLS_SYNTH_CLI_H

#include "model/synth.h"
#include "tools/common.h"

/* Options: --size NAME, --synth-version V (also --version), --layers L, --embd D, --ffn F,
 * --head-size N, --n-vocab V, --dtype f16|f32|bf16, --synth-seed S. Same contract as
 * cli_model_args_parse: returns the argv entries used (2), 0 if `opt` is not one of these, or -1 after
 * printing an error. Sets *given when an option was used, so that callers know a synthetic model was
 * asked for. */
int cli_synth_parse(struct rwkv_synth_options *o, int *given, const char *cmd, const char *opt, const char *value);

/* "synth v7 L12 D768 V65536" (or the preset's name when the shape is one), for reports. */
void cli_synth_name(const struct rwkv_synth_options *o, char *buf, size_t n);

#endif
