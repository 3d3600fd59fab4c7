/* The layer programs of RWKV v4, v5.0, v5.2, v6 and v7 (math: ../shared/models/README.md). */
#include "model/program.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/model.h"

struct builder {
    struct rwkv_model *m;
    struct rwkv_program *p;
    int layer;
    char *why;
    size_t why_len;
    int failed;
};

static const struct rwkv_view NONE = {-1, 0, 0};

static void fail(struct builder *b, const char *fmt, ...)
{
    if (b->failed)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(b->why, b->why_len, fmt, ap);
    va_end(ap);
    b->failed = 1;
}

/* A runtime buffer by name (created on first use). */
static struct rwkv_view buf(struct builder *b, const char *name, int width)
{
    struct rwkv_program *p = b->p;
    for (int i = 0; i < p->n_buffers; i++)
        if (strcmp(p->buffers[i].name, name) == 0)
            return (struct rwkv_view){i, 0, p->buffers[i].width};
    if (p->n_buffers == RWKV_MAX_BUFFERS) {
        fail(b, "too many runtime buffers");
        return NONE;
    }
    p->buffers[p->n_buffers] = (struct rwkv_buffer_desc){name, width, 0};
    return (struct rwkv_view){p->n_buffers++, 0, width};
}

static struct rwkv_view out_buf(struct builder *b, const char *name, int width)
{
    struct rwkv_view v = buf(b, name, width);
    if (v.buf >= 0)
        b->p->buffers[v.buf].per_output = 1;
    return v;
}

static struct rwkv_view cols(struct rwkv_view v, int col, int width)
{
    v.col += col;
    v.width = width;
    return v;
}

/* Index of a weight: `name` is relative to the current layer ("att.key.weight") or global. */
static int weight(struct builder *b, const char *name)
{
    char full[160];
    if (b->layer >= 0)
        snprintf(full, sizeof full, "blocks.%d.%s", b->layer, name);
    else
        snprintf(full, sizeof full, "%s", name);
    for (int i = 0; i < b->m->n_weights; i++)
        if (strcmp(b->m->weights[i].name, full) == 0)
            return i;
    fail(b, "internal: weight '%s' not loaded", full);
    return -1;
}

static struct rwkv_op *emit(struct builder *b, enum rwkv_op_kind kind, struct rwkv_view out)
{
    struct rwkv_program *p = b->p;
    if (b->failed)
        return NULL;
    if (p->n_ops == p->cap_ops) {
        int nc = p->cap_ops ? p->cap_ops * 2 : 256;
        struct rwkv_op *n = realloc(p->ops, (size_t)nc * sizeof *n);
        if (!n) {
            fail(b, "out of memory building the layer program");
            return NULL;
        }
        p->ops = n;
        p->cap_ops = nc;
    }
    struct rwkv_op *op = &p->ops[p->n_ops++];
    memset(op, 0, sizeof *op);
    op->kind = kind;
    op->layer = b->layer;
    op->out = out;
    for (int i = 0; i < RWKV_OP_MAX_IN; i++)
        op->in[i] = NONE;
    for (int i = 0; i < RWKV_OP_MAX_W; i++)
        op->w[i] = -1;
    return op;
}

static void hook(struct builder *b, const char *name, struct rwkv_view v)
{
    struct rwkv_op *op = emit(b, RWKV_OP_HOOK, NONE);
    if (op) {
        op->in[0] = v;
        op->hook = name;
    }
}

static void layernorm(struct builder *b, struct rwkv_view in, struct rwkv_view out, const char *w, const char *bias)
{
    struct rwkv_op *op = emit(b, RWKV_OP_LAYERNORM, out);
    if (op) {
        op->in[0] = in;
        op->w[0] = weight(b, w);
        op->w[1] = weight(b, bias);
        op->eps = 1e-5f;
    }
}

static void shift(struct builder *b, struct rwkv_view in, struct rwkv_view out, size_t state_off)
{
    struct rwkv_op *op = emit(b, RWKV_OP_SHIFT, out);
    if (op) {
        op->in[0] = in;
        op->state_off = state_off;
    }
}

/* out = a + (c - a) * (mix + dyn) */
static void lerp(struct builder *b, struct rwkv_view a, struct rwkv_view c, const char *mix, struct rwkv_view dyn,
                 struct rwkv_view out)
{
    struct rwkv_op *op = emit(b, RWKV_OP_LERP, out);
    if (op) {
        op->in[0] = a;
        op->in[1] = c;
        op->in[2] = dyn;
        op->w[0] = mix ? weight(b, mix) : -1;
    }
}

static void matmul(struct builder *b, const char *w, struct rwkv_view in, struct rwkv_view out, enum rwkv_act act,
                   const char *bias, int accumulate)
{
    struct rwkv_op *op = emit(b, RWKV_OP_MATMUL, out);
    if (!op)
        return;
    op->in[0] = in;
    op->w[0] = weight(b, w);
    op->w[1] = bias ? weight(b, bias) : -1;
    op->act = act;
    op->accumulate = accumulate;
    if (op->w[0] >= 0) {
        const struct rwkv_weight *mw = &b->m->weights[op->w[0]];
        if (rwkv_weight_rows(mw) != out.width || rwkv_weight_cols(mw) != in.width)
            fail(b, "internal: %s is [%lld, %lld] for a %d -> %d map", mw->name, (long long)rwkv_weight_rows(mw),
                 (long long)rwkv_weight_cols(mw), in.width, out.width);
    }
}

static void binary(struct builder *b, enum rwkv_op_kind kind, struct rwkv_view x, struct rwkv_view y,
                   struct rwkv_view out)
{
    struct rwkv_op *op = emit(b, kind, out);
    if (op) {
        op->in[0] = x;
        op->in[1] = y;
    }
}

/* ---- per-version blocks ---- */

struct layer_state {
    size_t att_shift, wkv, ffn_shift;
};

/* v4-v6 channel mixing. `v6_form` selects x = xx + (sx - xx) * m over x = sx + (xx - sx) * m. */
static void ffn_classic(struct builder *b, struct rwkv_view x, struct rwkv_view xx, struct rwkv_view sx,
                        const struct layer_state *ls, int v6_form)
{
    int C = b->m->info.n_embd, F = b->m->info.n_ffn;
    struct rwkv_view xk = buf(b, "xk", C), xr = buf(b, "xr", C);
    struct rwkv_view kf = buf(b, "ffn_k", F), r = buf(b, "r", C), vf = buf(b, "v", C);
    hook(b, "ffn.in", x);
    layernorm(b, x, xx, "ln2.weight", "ln2.bias");
    hook(b, "ffn.ln", xx);
    shift(b, xx, sx, ls->ffn_shift);
    struct rwkv_view a = v6_form ? xx : sx, c = v6_form ? sx : xx;
    lerp(b, a, c, "ffn.time_mix_k", NONE, xk);
    lerp(b, a, c, "ffn.time_mix_r", NONE, xr);
    hook(b, "ffn.mix", xk);
    matmul(b, "ffn.key.weight", xk, kf, RWKV_ACT_RELU_SQ, NULL, 0);
    hook(b, "ffn.key", kf);
    matmul(b, "ffn.receptance.weight", xr, r, RWKV_ACT_SIGMOID, NULL, 0);
    hook(b, "ffn.receptance", r);
    matmul(b, "ffn.value.weight", kf, vf, RWKV_ACT_NONE, NULL, 0);
    hook(b, "ffn.value", vf);
    binary(b, RWKV_OP_MULADD, r, vf, x);
    hook(b, "ffn.out", x);
}

static void att_v4(struct builder *b, struct rwkv_view x, struct rwkv_view xx, struct rwkv_view sx,
                   const struct layer_state *ls)
{
    int C = b->m->info.n_embd;
    struct rwkv_view xk = buf(b, "xk", C), xv = buf(b, "xv", C), xr = buf(b, "xr", C);
    struct rwkv_view k = buf(b, "k", C), v = buf(b, "v", C), r = buf(b, "r", C), y = buf(b, "y", C);
    lerp(b, sx, xx, "att.time_mix_k", NONE, xk);
    lerp(b, sx, xx, "att.time_mix_v", NONE, xv);
    lerp(b, sx, xx, "att.time_mix_r", NONE, xr);
    hook(b, "att.mix", xk);
    matmul(b, "att.key.weight", xk, k, RWKV_ACT_NONE, NULL, 0);
    matmul(b, "att.value.weight", xv, v, RWKV_ACT_NONE, NULL, 0);
    matmul(b, "att.receptance.weight", xr, r, RWKV_ACT_SIGMOID, NULL, 0);
    hook(b, "att.key", k);
    hook(b, "att.value", v);
    hook(b, "att.receptance", r);
    struct rwkv_op *op = emit(b, RWKV_OP_WKV4, y);
    if (op) {
        op->in[0] = k;
        op->in[1] = v;
        op->in[2] = r;
        op->w[0] = weight(b, "att.time_decay");
        op->w[1] = weight(b, "att.time_first");
        op->heads = 1;
        op->head_size = C;
        op->state_off = ls->wkv;
    }
    hook(b, "att.wkv", y);
    matmul(b, "att.output.weight", y, x, RWKV_ACT_NONE, NULL, 1);
}

static void wkv5(struct builder *b, struct rwkv_view r, struct rwkv_view k, struct rwkv_view v, struct rwkv_view w,
                 struct rwkv_view g, struct rwkv_view y, const char *decay, const struct layer_state *ls)
{
    struct rwkv_op *op = emit(b, RWKV_OP_WKV5, y);
    if (!op)
        return;
    op->in[0] = r;
    op->in[1] = k;
    op->in[2] = v;
    op->in[3] = w;
    op->in[4] = g;
    op->w[0] = decay ? weight(b, decay) : -1;
    op->w[1] = weight(b, "att.time_first");
    op->w[2] = weight(b, "att.ln_x.weight");
    op->w[3] = weight(b, "att.ln_x.bias");
    op->heads = b->m->info.n_head;
    op->head_size = b->m->info.head_size;
    op->eps = 64e-5f;
    op->state_off = ls->wkv;
}

static void att_v5(struct builder *b, struct rwkv_view x, struct rwkv_view xx, struct rwkv_view sx,
                   const struct layer_state *ls)
{
    int C = b->m->info.n_embd;
    int gated = b->m->info.arch == RWKV_ARCH_V5_2;
    struct rwkv_view xk = buf(b, "xk", C), xv = buf(b, "xv", C), xr = buf(b, "xr", C), xg = buf(b, "xg", C);
    struct rwkv_view k = buf(b, "k", C), v = buf(b, "v", C), r = buf(b, "r", C), g = buf(b, "g", C);
    struct rwkv_view y = buf(b, "y", C);
    lerp(b, sx, xx, "att.time_mix_k", NONE, xk);
    lerp(b, sx, xx, "att.time_mix_v", NONE, xv);
    lerp(b, sx, xx, "att.time_mix_r", NONE, xr);
    if (gated)
        lerp(b, sx, xx, "att.time_mix_g", NONE, xg);
    hook(b, "att.mix", xk);
    matmul(b, "att.receptance.weight", xr, r, RWKV_ACT_NONE, NULL, 0);
    matmul(b, "att.key.weight", xk, k, RWKV_ACT_NONE, NULL, 0);
    matmul(b, "att.value.weight", xv, v, RWKV_ACT_NONE, NULL, 0);
    if (gated)
        matmul(b, "att.gate.weight", xg, g, RWKV_ACT_SILU, NULL, 0);
    hook(b, "att.receptance", r);
    hook(b, "att.key", k);
    hook(b, "att.value", v);
    if (gated)
        hook(b, "att.gate", g);
    wkv5(b, r, k, v, NONE, gated ? g : NONE, y, "att.time_decay", ls);
    hook(b, "att.wkv", y);
    matmul(b, "att.output.weight", y, x, RWKV_ACT_NONE, NULL, 1);
}

static void att_v6(struct builder *b, struct rwkv_view x, struct rwkv_view xx, struct rwkv_view sx,
                   const struct layer_state *ls)
{
    const struct rwkv_model_info *in = &b->m->info;
    int C = in->n_embd, D = in->dim_mix;
    struct rwkv_view xxx = buf(b, "xxx", C), t = buf(b, "lora", 5 * D), mf = buf(b, "mix", C);
    struct rwkv_view xw = buf(b, "xw", C), xk = buf(b, "xk", C), xv = buf(b, "xv", C), xr = buf(b, "xr", C),
                     xg = buf(b, "xg", C);
    struct rwkv_view dd = buf(b, "decay_lora", in->dim_decay), w = buf(b, "w", C);
    struct rwkv_view k = buf(b, "k", C), v = buf(b, "v", C), r = buf(b, "r", C), g = buf(b, "g", C);
    struct rwkv_view y = buf(b, "y", C);
    static const char *const w2[5] = {"att.time_mix_w2:0", "att.time_mix_w2:1", "att.time_mix_w2:2",
                                      "att.time_mix_w2:3", "att.time_mix_w2:4"};
    static const char *const mixes[5] = {"att.time_mix_w", "att.time_mix_k", "att.time_mix_v", "att.time_mix_r",
                                         "att.time_mix_g"};
    struct rwkv_view outs[5] = {xw, xk, xv, xr, xg};
    lerp(b, xx, sx, "att.time_mix_x", NONE, xxx);
    matmul(b, "att.time_mix_w1", xxx, t, RWKV_ACT_TANH, NULL, 0);
    for (int f = 0; f < 5; f++) {
        matmul(b, w2[f], cols(t, f * D, D), mf, RWKV_ACT_NONE, NULL, 0);
        lerp(b, xx, sx, mixes[f], mf, outs[f]);
    }
    hook(b, "att.mix", xk);
    matmul(b, "att.time_decay_w1", xw, dd, RWKV_ACT_TANH, NULL, 0);
    matmul(b, "att.time_decay_w2", dd, w, RWKV_ACT_EXP_NEG_EXP, "att.time_decay", 0);
    hook(b, "att.decay", w);
    matmul(b, "att.receptance.weight", xr, r, RWKV_ACT_NONE, NULL, 0);
    matmul(b, "att.key.weight", xk, k, RWKV_ACT_NONE, NULL, 0);
    matmul(b, "att.value.weight", xv, v, RWKV_ACT_NONE, NULL, 0);
    matmul(b, "att.gate.weight", xg, g, RWKV_ACT_SILU, NULL, 0);
    hook(b, "att.receptance", r);
    hook(b, "att.key", k);
    hook(b, "att.value", v);
    hook(b, "att.gate", g);
    wkv5(b, r, k, v, w, g, y, NULL, ls);
    hook(b, "att.wkv", y);
    matmul(b, "att.output.weight", y, x, RWKV_ACT_NONE, NULL, 1);
}

static void att_v7(struct builder *b, struct rwkv_view x, struct rwkv_view xx, struct rwkv_view sx,
                   const struct layer_state *ls)
{
    const struct rwkv_model_info *in = &b->m->info;
    int C = in->n_embd;
    struct rwkv_view xr = buf(b, "xr", C), xw = buf(b, "xw", C), xk = buf(b, "xk", C), xv = buf(b, "xv", C),
                     xa = buf(b, "xa", C), xg = buf(b, "xg", C);
    struct rwkv_view r = buf(b, "r", C), w = buf(b, "w", C), k = buf(b, "k", C), v = buf(b, "v", C),
                     a = buf(b, "a", C), g = buf(b, "g", C), y = buf(b, "y", C);
    struct rwkv_view vfirst = buf(b, "v_first", C), vg = buf(b, "v_gate", C);
    struct rwkv_view tw = buf(b, "w_lora", in->dim_mix), ta = buf(b, "a_lora", in->dim_decay),
                     tg = buf(b, "g_lora", in->dim_gate);
    lerp(b, xx, sx, "att.x_r", NONE, xr);
    lerp(b, xx, sx, "att.x_w", NONE, xw);
    lerp(b, xx, sx, "att.x_k", NONE, xk);
    lerp(b, xx, sx, "att.x_v", NONE, xv);
    lerp(b, xx, sx, "att.x_a", NONE, xa);
    lerp(b, xx, sx, "att.x_g", NONE, xg);
    hook(b, "att.mix", xk);
    matmul(b, "att.receptance.weight", xr, r, RWKV_ACT_NONE, NULL, 0);
    matmul(b, "att.key.weight", xk, k, RWKV_ACT_NONE, NULL, 0);
    matmul(b, "att.value.weight", xv, v, RWKV_ACT_NONE, NULL, 0);
    matmul(b, "att.w1", xw, tw, RWKV_ACT_TANH, NULL, 0);
    matmul(b, "att.w2", tw, w, RWKV_ACT_V7_DECAY, "att.w0", 0);
    matmul(b, "att.a1", xa, ta, RWKV_ACT_NONE, NULL, 0);
    matmul(b, "att.a2", ta, a, RWKV_ACT_SIGMOID, "att.a0", 0);
    matmul(b, "att.g1", xg, tg, RWKV_ACT_SIGMOID, NULL, 0);
    matmul(b, "att.g2", tg, g, RWKV_ACT_NONE, NULL, 0);
    if (b->layer == 0) {
        binary(b, RWKV_OP_COPY, v, NONE, vfirst);
    } else {
        struct rwkv_view tv = buf(b, "v_lora", in->dim_value);
        matmul(b, "att.v1", xv, tv, RWKV_ACT_NONE, NULL, 0);
        matmul(b, "att.v2", tv, vg, RWKV_ACT_SIGMOID, "att.v0", 0);
        lerp(b, v, vfirst, NULL, vg, v);
    }
    hook(b, "att.receptance", r);
    hook(b, "att.decay", w);
    hook(b, "att.key", k);
    hook(b, "att.value", v);
    hook(b, "att.iclr", a);
    hook(b, "att.gate", g);
    struct rwkv_op *op = emit(b, RWKV_OP_WKV7, y);
    if (op) {
        struct rwkv_view ins[6] = {r, w, k, v, a, g};
        memcpy(op->in, ins, sizeof ins);
        op->w[0] = weight(b, "att.k_k");
        op->w[1] = weight(b, "att.k_a");
        op->w[2] = weight(b, "att.r_k");
        op->w[3] = weight(b, "att.ln_x.weight");
        op->w[4] = weight(b, "att.ln_x.bias");
        op->heads = in->n_head;
        op->head_size = in->head_size;
        op->eps = 64e-5f;
        op->state_off = ls->wkv;
    }
    hook(b, "att.wkv", y);
    matmul(b, "att.output.weight", y, x, RWKV_ACT_NONE, NULL, 1);
}

static void ffn_v7(struct builder *b, struct rwkv_view x, struct rwkv_view xx, struct rwkv_view sx,
                   const struct layer_state *ls)
{
    int C = b->m->info.n_embd, F = b->m->info.n_ffn;
    struct rwkv_view xk = buf(b, "xk", C), kf = buf(b, "ffn_k", F);
    hook(b, "ffn.in", x);
    layernorm(b, x, xx, "ln2.weight", "ln2.bias");
    hook(b, "ffn.ln", xx);
    shift(b, xx, sx, ls->ffn_shift);
    lerp(b, xx, sx, "ffn.x_k", NONE, xk);
    hook(b, "ffn.mix", xk);
    matmul(b, "ffn.key.weight", xk, kf, RWKV_ACT_RELU_SQ, NULL, 0);
    hook(b, "ffn.key", kf);
    matmul(b, "ffn.value.weight", kf, x, RWKV_ACT_NONE, NULL, 1);
    hook(b, "ffn.out", x);
}

int rwkv_program_build(struct rwkv_model *m, char *why, size_t why_len)
{
    struct rwkv_program *p = &m->program;
    memset(p, 0, sizeof *p);
    struct builder b = {m, p, -1, why, why_len, 0};
    const struct rwkv_model_info *in = &m->info;
    int C = in->n_embd;
    size_t wkv_floats = in->arch == RWKV_ARCH_V4 ? 3 * (size_t)C : (size_t)in->n_head * in->head_size * in->head_size;
    size_t per_layer = 2 * (size_t)C + wkv_floats;

    struct rwkv_view x = buf(&b, "x", C), xx = buf(&b, "xx", C), sx = buf(&b, "sx", C);
    struct rwkv_op *op = emit(&b, RWKV_OP_EMBED, x);
    if (op)
        op->w[0] = weight(&b, "emb.weight");
    hook(&b, "embed", x);
    layernorm(&b, x, x, "blocks.0.ln0.weight", "blocks.0.ln0.bias");
    hook(&b, "embed.ln", x);
    for (int l = 0; l < in->n_layer && !b.failed; l++) {
        b.layer = l;
        struct layer_state ls = {l * per_layer, l * per_layer + C, l * per_layer + C + wkv_floats};
        hook(&b, "att.in", x);
        layernorm(&b, x, xx, "ln1.weight", "ln1.bias");
        hook(&b, "att.ln", xx);
        shift(&b, xx, sx, ls.att_shift);
        switch (in->arch) {
        case RWKV_ARCH_V4: att_v4(&b, x, xx, sx, &ls); break;
        case RWKV_ARCH_V5_0:
        case RWKV_ARCH_V5_2: att_v5(&b, x, xx, sx, &ls); break;
        case RWKV_ARCH_V6: att_v6(&b, x, xx, sx, &ls); break;
        case RWKV_ARCH_V7: att_v7(&b, x, xx, sx, &ls); break;
        }
        hook(&b, "att.out", x);
        if (in->arch == RWKV_ARCH_V7)
            ffn_v7(&b, x, xx, sx, &ls);
        else
            ffn_classic(&b, x, xx, sx, &ls, in->arch == RWKV_ARCH_V6);
    }
    b.layer = -1;
    struct rwkv_view xo = out_buf(&b, "x_out", C), logits = out_buf(&b, "logits", in->n_vocab);
    op = emit(&b, RWKV_OP_GATHER, xo);
    if (op)
        op->in[0] = x;
    hook(&b, "head.in", xo);
    layernorm(&b, xo, xo, "ln_out.weight", "ln_out.bias");
    hook(&b, "head.ln", xo);
    matmul(&b, "head.weight", xo, logits, RWKV_ACT_NONE, NULL, 0);
    hook(&b, "head.out", logits);
    p->logits_buf = logits.buf;
    p->state_floats = per_layer * (size_t)in->n_layer;
    if (b.failed) {
        rwkv_program_free(p);
        return 0;
    }
    return 1;
}

void rwkv_program_free(struct rwkv_program *p)
{
    free(p->ops);
    memset(p, 0, sizeof *p);
}

const char *rwkv_op_name(enum rwkv_op_kind kind)
{
    static const char *const names[RWKV_OP_COUNT] = {
        "embed", "layernorm", "shift", "lerp", "matmul", "muladd", "copy", "wkv4", "wkv5", "wkv7",
        "gather", "hook",
    };
    return (unsigned)kind < RWKV_OP_COUNT ? names[kind] : "?";
}
