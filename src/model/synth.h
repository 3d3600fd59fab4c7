/* Synthetic models: random weights of a real model's shape, built in memory in the web-rwkv .st layout
 * the loader reads, so that benchmarks and tests run without downloading a checkpoint.
 *
 * Weights follow RWKV-LM's initialisation (per-channel decay and mix ramps over layers and channels,
 * orthogonal-scale matrices), except where training starts a tensor at zero: there a small random value
 * keeps every path of the layer in use. The result produces finite, non-constant logits for long
 * sequences; it is not a language model. */
#ifndef RWKV_MODEL_SYNTH_H
#define RWKV_MODEL_SYNTH_H

#include <stddef.h>
#include <stdint.h>

#include "io/tensor_table.h"
#include "rwkv.h"

struct rwkv_synth_options {
    int version;          /* 4, 5 (5.2 layout, gated), 6 or 7 */
    int n_layer;          /* 1 .. 4096 */
    int n_embd;           /* C, 1 .. 65536; v5-v7: a multiple of head_size */
    int n_vocab;          /* V; 0 = 65536 (the World vocabulary) */
    int n_ffn;            /* F; 0 = v7: 4 C, v4-v6: 3.5 C rounded down to a multiple of 32 */
    int head_size;        /* N (v5-v7); 0 = 64 */
    uint64_t seed;        /* same options and seed = same bytes, whatever the thread count */
    enum rwkv_dtype dtype;/* of every tensor: F16 (web-rwkv's), F32 or BF16 */
    int n_threads;        /* 0 = one per core */
};

/* The v7 0.1B shape (L12 D768, V65536), F16, seed 0. */
struct rwkv_synth_options rwkv_synth_default_options(void);

/* Sets version 7 and the dimensions of a released model size: "0.1b" (L12 D768), "0.4b" (L24 D1024),
 * "1.5b" (L24 D2048), "2.9b" (L32 D2560), "7.2b" (L32 D4096), vocabulary 65536. Other fields are kept.
 * Returns 0 for an unknown name. */
int rwkv_synth_preset(const char *name, struct rwkv_synth_options *o);
/* The name of the preset whose shape `o` has (dtype and seed aside), or NULL. */
const char *rwkv_synth_preset_of(const struct rwkv_synth_options *o);
/* "0.1b|0.4b|1.5b|2.9b|7.2b", for help texts. */
const char *rwkv_synth_preset_names(void);

/* The dimensions a synthetic model gets (defaults resolved), after the same checks as rwkv_synth_table. */
struct rwkv_synth_shape {
    int version, n_layer, n_embd, n_vocab, n_ffn, n_head, head_size;
    int rank_w, rank_a, rank_v, rank_g; /* v7 LoRA ranks (decay, in-context rate, value residual, gate) */
    int rank_mix, rank_decay;           /* v6 time_mix / time_decay LoRA ranks */
    int n_tensors;
    int64_t n_params;                   /* elements of all tensors */
    int64_t n_bytes;                    /* bytes of all tensors */
};
rwkv_status rwkv_synth_shape(const struct rwkv_synth_options *o, struct rwkv_synth_shape *out,
                             struct rwkv_error *err);

/* Builds the model's tensor table in memory: names and shapes as web-rwkv's converter writes them,
 * tensors sorted by name, data in buffers owned by the table (freed by rwkv_table_free), no file
 * mapping, out->path a description ("synthetic v7 L12 D768"). On failure *out is empty. */
rwkv_status rwkv_synth_table(const struct rwkv_synth_options *o, struct rwkv_tensor_table *out,
                             struct rwkv_error *err);

/* Builds the table and writes it as a .st file (atomically). */
rwkv_status rwkv_synth_write(const struct rwkv_synth_options *o, const char *path, struct rwkv_error *err);

#endif
