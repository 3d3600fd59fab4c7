/* Layer programs: the math of each RWKV version written once, as a list of coarse ops over named
 * runtime buffers, with named hook points between them. Every backend executes the same program.
 *
 * Runtime buffers are float32 matrices of `rows` x `width`: rows are the chunk's tokens (T), or, for
 * buffers marked `per_output`, the logits rows requested in the chunk (R). A view selects a column
 * range of a buffer (for example one of the five v6 LoRA slices). */
#ifndef RWKV_MODEL_PROGRAM_H
#define RWKV_MODEL_PROGRAM_H

#include <stddef.h>
#include <stdint.h>

enum rwkv_op_kind {
    RWKV_OP_EMBED,     /* out[t] = emb[tokens[t]]                           w0 = emb            */
    RWKV_OP_LAYERNORM, /* out = LN(in0) * w0 + w1 per row, eps                                     */
    RWKV_OP_SHIFT,     /* out[t] = in0 of the previous token of the same slot; the first token of a
                          slot reads state[state_off..+width]; the state then gets the slot's last
                          token's in0                                                             */
    RWKV_OP_LERP,      /* out = in0 + (in1 - in0) * (w0 + in2): w0 optional vector, in2 optional view */
    RWKV_OP_MATMUL,    /* out (+)= act(w0 . in0 + w1) : w0 matrix [width(out)][width(in0)], w1 opt bias */
    RWKV_OP_MULADD,    /* out += in0 * in1                                                          */
    RWKV_OP_COPY,      /* out = in0                                                                 */
    RWKV_OP_WKV4,      /* out = r * wkv4(k, v; w0 = -exp(decay), w1 = bonus), in0 = k, in1 = v,
                          in2 = r (already sigmoid); state: aa, bb, pp at state_off (3C floats)     */
    RWKV_OP_WKV5,      /* v5/v6: y = GroupNorm_h(wkv(r,k,v,w,u)) * w2 + w3, times in4 (gate) if set.
                          in0 r, in1 k, in2 v, in3 per-token decay (v6) or none; w0 decay vector (v5),
                          w1 bonus u; state S[h][key][value] at state_off                          */
    RWKV_OP_WKV7,      /* v7: kk = L2norm_h(k*k_k); k' = k*(1+(a-1)*k_a); S = S diag(w) - S kk (kk a)^T
                          + v k'^T; y = GN_h(S r)*ln_w + ln_b + (sum r k' r_k) v; out = y * g.
                          in0 r, in1 w (decay factor), in2 k, in3 v, in4 a, in5 g;
                          w0 k_k, w1 k_a, w2 r_k, w3 ln_x.weight, w4 ln_x.bias; state S[h][value][key] */
    RWKV_OP_GATHER,    /* out[r] = in0[out_rows[r]] for the chunk's requested logits rows           */
    RWKV_OP_HOOK,      /* a named point: user hooks may read/modify `in0` (and the state)          */
    RWKV_OP_COUNT
};

enum rwkv_act {
    RWKV_ACT_NONE,
    RWKV_ACT_SIGMOID,
    RWKV_ACT_TANH,
    RWKV_ACT_RELU_SQ,   /* max(z, 0)^2 */
    RWKV_ACT_SILU,
    RWKV_ACT_EXP_NEG_EXP, /* exp(-exp(z)): v6 decay */
    RWKV_ACT_V7_DECAY     /* exp(-exp(-0.5) * sigmoid(z)): v7 decay */
};

#define RWKV_OP_MAX_IN 6
#define RWKV_OP_MAX_W 5
#define RWKV_MAX_BUFFERS 32

struct rwkv_view {
    int buf;   /* buffer index, -1 = none */
    int col;   /* first column */
    int width; /* columns */
};

struct rwkv_op {
    enum rwkv_op_kind kind;
    int layer;                          /* -1 for global ops */
    struct rwkv_view out;
    struct rwkv_view in[RWKV_OP_MAX_IN];
    int w[RWKV_OP_MAX_W];               /* weight indices into model->weights, -1 = none */
    enum rwkv_act act;
    int accumulate;                     /* MATMUL: add into out */
    float eps;                          /* LAYERNORM, WKV5/WKV7 group norm */
    int heads, head_size;               /* WKV ops */
    size_t state_off;                   /* SHIFT / WKV: float offset within a slot's state */
    const char *hook;                   /* HOOK: point name (static string), e.g. "att.out" */
};

struct rwkv_buffer_desc {
    const char *name; /* static string */
    int width;
    int per_output;   /* rows are logits rows (R) instead of tokens (T) */
};

struct rwkv_program {
    struct rwkv_op *ops;
    int n_ops, cap_ops;
    struct rwkv_buffer_desc buffers[RWKV_MAX_BUFFERS];
    int n_buffers;
    int logits_buf;   /* buffer holding [R][n_vocab] logits at the end */
    size_t state_floats; /* per slot */
};

struct rwkv_model;
/* Builds model->program for model->info.arch; weights must already be in model->weights. */
int rwkv_program_build(struct rwkv_model *model, char *why, size_t why_len);
void rwkv_program_free(struct rwkv_program *p);

const char *rwkv_op_name(enum rwkv_op_kind kind);

#endif
