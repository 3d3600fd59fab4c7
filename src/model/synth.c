/* Synthetic models: a recipe per tensor (name, symbolic shape, initialiser) for each version, filled
 * from a seeded generator into table-owned buffers.
 *
 * Initialisers follow RWKV-LM (RWKV-v4neo, RWKV-v5 x052/x060, RWKV-v7 train_temp x070):
 *   token-shift mixes   ramps over channels whose slope changes with depth: ddd^(p * (1 - l/L))
 *   decays              per-channel ramps from slow to fast (v7 with a zigzag inside each head)
 *   matrices            uniform with the entry scale of an orthogonal matrix of RWKV-LM's gain
 *                       (std = gain / sqrt(max(rows, cols))), which is what keeps activations O(1)
 *   emb / head          head gain 0.5 sqrt(V / C) as in RWKV-LM
 * Deviations, both to make the model exercise every path: training zeroes att.output, ffn.value,
 * ffn.receptance and the LoRA down-projections (w1, a1, ...), which would cut the recurrence off from the
 * logits; here they get gain 1. Training starts emb at +-1e-4, below ln0's eps, which would make all
 * tokens look alike; here it is +-0.5.
 *
 * Each tensor draws from its own generator, seeded from the model seed and the tensor's name, in
 * fixed-size blocks with one generator each: the bytes do not depend on the thread count. */
#include "model/synth.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/rng.h"
#include "core/platform.h"

#define MAX_LAYERS 4096 /* the loader counts blocks up to this */
#define MAX_EMBD 65536  /* the loader's limit */
#define MAX_VOCAB (1 << 24)
#define MAX_FFN (1 << 22)
#define MAX_HEAD 1024
#define MAX_BYTES ((int64_t)1 << 40) /* refuse before malloc: sanitizers abort on absurd requests */
#define BLOCK 4096                   /* elements per generator block */

/* ---- random numbers: splitmix64 seeds xoshiro256** ---- */

/* Uniform in [-1, 1). */
static float rng_sym(struct rwkv_rng *r)
{
    return (float)(rwkv_rng_next(r) >> 40) * (2.0f / 16777216.0f) - 1.0f;
}

static uint64_t name_hash(const char *s)
{
    uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a */
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 0x100000001b3ull;
    return h;
}

/* ---- recipes ---- */

enum init {
    I_ONE,
    I_ZERO,
    I_LNX,    /* GroupNorm weight: ((l + 1) / L)^0.7, RWKV-LM's layer scale */
    I_MIX,    /* v4/v5 time_mix: ddd^(a r1) + b r0 */
    I_MAA,    /* v6/v7 maa: 1 - (ddd^(a r1) + b r0) */
    I_MAA4,   /* v7 ffn.x_k: 1 - ddd^(r1^4) */
    I_DECAY4, /* v4 time_decay: -5 + 8 t^(0.7 + 1.3 r0) */
    I_DECAY5, /* v5/v6 time_decay: -6 + 5 t^(0.7 + 1.3 r0) */
    I_FIRST4, /* v4 time_first: ln 0.3 + zigzag 0.5 */
    I_FIRST5, /* v5/v6 time_faaaa: r0 (1 - t) + zigzag 0.1 */
    I_W0,     /* v7 decay base: -6 + 6 t^(1 + r0^0.3) + 0.5 + 2.5 zz */
    I_LIN,    /* v7 v0/k_k/k_a/r_k: a + b (t - 0.5) */
    I_A0,     /* v7 a0: as I_LIN + 0.3 zz */
    I_EMB,    /* uniform +-0.5 */
    I_HEAD,   /* orthogonal scale, gain 0.5 max(1, sqrt(V / C)) */
    I_MAT,    /* orthogonal scale: std = a / sqrt(max(rows, cols)) */
    I_UP      /* RWKV-LM ortho_init of a LoRA up-projection: std = a / sqrt(rows) */
};

/* Symbolic dimensions. */
enum sdim { S_1, S_C, S_F, S_V, S_H, S_N, S_5, S_RW, S_RA, S_RV, S_RG, S_RMIX, S_RMIX5, S_RDECAY, S_COUNT };

struct recipe {
    const char *name; /* under blocks.L, or a global name */
    enum init init;
    float a, b;       /* initialiser parameters (gain; ramp power and offset; constant and slope) */
    int ndim;
    enum sdim dim[3];
    int skip_layer0;  /* v7 v0/v1/v2: layer 0 has no value residual */
};

#define VEC(n, i, a, b) {n, i, a, b, 1, {S_C, S_1, S_1}, 0}
#define MIX(n, i, a, b) {n, i, a, b, 3, {S_1, S_1, S_C}, 0}
#define HN(n, i, a, b) {n, i, a, b, 2, {S_H, S_N, S_1}, 0}
#define MAT(n, r, c, g) {n, I_MAT, g, 0, 2, {r, c, S_1}, 0}
#define UP(n, r, c, g) {n, I_UP, g, 0, 2, {r, c, S_1}, 0}
#define END {NULL, I_ZERO, 0, 0, 0, {S_1, S_1, S_1}, 0}

static const struct recipe globals[] = {
    {"emb.weight", I_EMB, 0, 0, 2, {S_V, S_C, S_1}, 0},
    VEC("blocks.0.ln0.weight", I_ONE, 0, 0),
    VEC("blocks.0.ln0.bias", I_ZERO, 0, 0),
    VEC("ln_out.weight", I_ONE, 0, 0),
    VEC("ln_out.bias", I_ZERO, 0, 0),
    {"head.weight", I_HEAD, 0, 0, 2, {S_V, S_C, S_1}, 0},
    END,
};

#define LN VEC("ln1.weight", I_ONE, 0, 0), VEC("ln1.bias", I_ZERO, 0, 0), \
    VEC("ln2.weight", I_ONE, 0, 0), VEC("ln2.bias", I_ZERO, 0, 0)
#define RKVO MAT("att.receptance.weight", S_C, S_C, 1), MAT("att.key.weight", S_C, S_C, 0.1f), \
    MAT("att.value.weight", S_C, S_C, 1), MAT("att.output.weight", S_C, S_C, 1)
#define LNX VEC("att.ln_x.weight", I_LNX, 0, 0), VEC("att.ln_x.bias", I_ZERO, 0, 0)
#define FFN_MATS MAT("ffn.key.weight", S_F, S_C, 1), MAT("ffn.value.weight", S_C, S_F, 1)

static const struct recipe layer_v4[] = {
    LN, RKVO, FFN_MATS,
    MIX("att.time_mix_k", I_MIX, 1, 0), MIX("att.time_mix_v", I_MIX, 1, 0.3f), MIX("att.time_mix_r", I_MIX, 0.5f, 0),
    VEC("att.time_decay", I_DECAY4, 0, 0), VEC("att.time_first", I_FIRST4, 0, 0),
    MIX("ffn.time_mix_k", I_MIX, 1, 0), MIX("ffn.time_mix_r", I_MIX, 1, 0),
    MAT("ffn.receptance.weight", S_C, S_C, 1),
    END,
};

static const struct recipe layer_v5[] = {
    LN, RKVO, FFN_MATS, LNX,
    MIX("att.time_mix_k", I_MIX, 1, 0), MIX("att.time_mix_v", I_MIX, 1, 0.3f), MIX("att.time_mix_r", I_MIX, 0.5f, 0),
    MIX("att.time_mix_g", I_MIX, 0.5f, 0), MAT("att.gate.weight", S_C, S_C, 0.1f),
    HN("att.time_decay", I_DECAY5, 0, 0), HN("att.time_first", I_FIRST5, 0, 0),
    MIX("ffn.time_mix_k", I_MIX, 1, 0), MIX("ffn.time_mix_r", I_MIX, 1, 0),
    MAT("ffn.receptance.weight", S_C, S_C, 1),
    END,
};

static const struct recipe layer_v6[] = {
    LN, RKVO, FFN_MATS, LNX,
    MIX("att.time_mix_x", I_MAA, 1, 0), MIX("att.time_mix_w", I_MAA, 1, 0), MIX("att.time_mix_k", I_MAA, 1, 0),
    MIX("att.time_mix_v", I_MAA, 1, 0.3f), MIX("att.time_mix_r", I_MAA, 0.5f, 0),
    MIX("att.time_mix_g", I_MAA, 0.5f, 0),
    MAT("att.time_mix_w1", S_RMIX5, S_C, 1), {"att.time_mix_w2", I_UP, 0.1f, 0, 3, {S_5, S_C, S_RMIX}, 0},
    MIX("att.time_decay", I_DECAY5, 0, 0), MAT("att.time_decay_w1", S_RDECAY, S_C, 1),
    UP("att.time_decay_w2", S_C, S_RDECAY, 0.1f),
    HN("att.time_first", I_FIRST5, 0, 0), MAT("att.gate.weight", S_C, S_C, 0.1f),
    MIX("ffn.time_mix_k", I_MAA, 1, 0), MIX("ffn.time_mix_r", I_MAA, 1, 0),
    MAT("ffn.receptance.weight", S_C, S_C, 1),
    END,
};

static const struct recipe layer_v7[] = {
    LN, RKVO, FFN_MATS, LNX,
    MIX("att.x_r", I_MAA, 0.2f, 0), MIX("att.x_w", I_MAA, 0.9f, 0), MIX("att.x_k", I_MAA, 0.7f, 0),
    MIX("att.x_v", I_MAA, 0.7f, 0), MIX("att.x_a", I_MAA, 0.9f, 0), MIX("att.x_g", I_MAA, 0.2f, 0),
    MIX("att.w0", I_W0, 0, 0), MAT("att.w1", S_RW, S_C, 1), UP("att.w2", S_C, S_RW, 0.1f),
    MIX("att.a0", I_A0, -0.19f, 0.4f), MAT("att.a1", S_RA, S_C, 1), UP("att.a2", S_C, S_RA, 0.1f),
    {"att.v0", I_LIN, 0.73f, -0.4f, 3, {S_1, S_1, S_C}, 1}, {"att.v1", I_MAT, 1, 0, 2, {S_RV, S_C, S_1}, 1},
    {"att.v2", I_UP, 0.1f, 0, 2, {S_C, S_RV, S_1}, 1},
    MAT("att.g1", S_RG, S_C, 1), UP("att.g2", S_C, S_RG, 0.1f),
    MIX("att.k_k", I_LIN, 0.71f, -0.1f), MIX("att.k_a", I_LIN, 1.02f, 0), HN("att.r_k", I_LIN, -0.04f, 0),
    MIX("ffn.x_k", I_MAA4, 0, 0),
    END,
};

static const struct recipe *layer_recipes(int version)
{
    switch (version) {
    case 4: return layer_v4;
    case 5: return layer_v5;
    case 6: return layer_v6;
    default: return layer_v7;
    }
}

/* ---- shapes ---- */

struct rwkv_synth_options rwkv_synth_default_options(void)
{
    struct rwkv_synth_options o;
    memset(&o, 0, sizeof o);
    o.version = 7;
    o.n_layer = 12;
    o.n_embd = 768;
    o.dtype = RWKV_DTYPE_F16;
    return o;
}

static const struct {
    const char *name;
    int n_layer, n_embd;
} presets[] = {
    {"0.1b", 12, 768}, {"0.4b", 24, 1024}, {"1.5b", 24, 2048}, {"2.9b", 32, 2560}, {"7.2b", 32, 4096},
};

int rwkv_synth_preset(const char *name, struct rwkv_synth_options *o)
{
    for (size_t i = 0; name && i < sizeof presets / sizeof presets[0]; i++) {
        if (strcmp(name, presets[i].name) == 0) {
            o->version = 7;
            o->n_layer = presets[i].n_layer;
            o->n_embd = presets[i].n_embd;
            o->n_vocab = 65536;
            o->n_ffn = 0;
            o->head_size = 0;
            return 1;
        }
    }
    return 0;
}

const char *rwkv_synth_preset_of(const struct rwkv_synth_options *o)
{
    for (size_t i = 0; i < sizeof presets / sizeof presets[0]; i++)
        if (o->version == 7 && o->n_layer == presets[i].n_layer && o->n_embd == presets[i].n_embd &&
            (o->n_vocab == 0 || o->n_vocab == 65536) && o->n_ffn == 0 && (o->head_size == 0 || o->head_size == 64))
            return presets[i].name;
    return NULL;
}

const char *rwkv_synth_preset_names(void)
{
    return "0.1b|0.4b|1.5b|2.9b|7.2b";
}

/* RWKV-LM's suggested LoRA rank: max(32, round(k C^p / 32) * 32). */
static int lora_rank(double k, double p, int C)
{
    int r = (int)floor(k * pow(C, p) / 32.0 + 0.5) * 32;
    return r < 32 ? 32 : r;
}

/* v7 ranks: RWKV-LM's formulas, which give the released 0.1B/1.5B/2.9B ranks (64/64/32/128,
 * 96/96/64/256, 96/96/64/320); the released 0.4B uses gate rank 128 where the formula says 160. */
static void ranks_v7(struct rwkv_synth_shape *s)
{
    int C = s->n_embd;
    s->rank_w = s->rank_a = lora_rank(1.8, 0.5, C);
    s->rank_v = lora_rank(1.3, 0.5, C);
    s->rank_g = C == 1024 ? 128 : lora_rank(0.6, 0.8, C);
}

static int64_t dim_value(const struct rwkv_synth_shape *s, enum sdim d)
{
    switch (d) {
    case S_1: return 1;
    case S_C: return s->n_embd;
    case S_F: return s->n_ffn;
    case S_V: return s->n_vocab;
    case S_H: return s->n_head;
    case S_N: return s->head_size;
    case S_5: return 5;
    case S_RW: return s->rank_w;
    case S_RA: return s->rank_a;
    case S_RV: return s->rank_v;
    case S_RG: return s->rank_g;
    case S_RMIX: return s->rank_mix;
    case S_RMIX5: return 5 * (int64_t)s->rank_mix;
    case S_RDECAY: return s->rank_decay;
    case S_COUNT: break;
    }
    return 0;
}

static int64_t recipe_numel(const struct rwkv_synth_shape *s, const struct recipe *r)
{
    int64_t n = 1;
    for (int k = 0; k < r->ndim; k++)
        n *= dim_value(s, r->dim[k]); /* each dim < 2^25, at most 3 of them: no overflow */
    return n;
}

/* Calls fn for every tensor of the model: (recipe, layer or -1 for globals). Returns the first non-zero
 * result of fn. */
typedef rwkv_status (*recipe_fn)(void *ctx, const struct recipe *r, int layer);

static rwkv_status for_each_recipe(const struct rwkv_synth_shape *s, recipe_fn fn, void *ctx)
{
    rwkv_status st = RWKV_OK;
    for (const struct recipe *r = globals; !st && r->name; r++)
        st = fn(ctx, r, -1);
    for (int l = 0; !st && l < s->n_layer; l++)
        for (const struct recipe *r = layer_recipes(s->version); !st && r->name; r++)
            if (!(r->skip_layer0 && l == 0))
                st = fn(ctx, r, l);
    return st;
}

static rwkv_status count_one(void *ctx, const struct recipe *r, int layer)
{
    struct rwkv_synth_shape *s = ctx;
    s->n_params += recipe_numel(s, r);
    s->n_tensors++;
    return RWKV_OK;
}

static rwkv_status check_range(const char *what, long v, long lo, long hi, struct rwkv_error *err)
{
    if (v < lo || v > hi)
        return rwkv_fail(err, RWKV_ERR_ARG, "synthetic model: %s %ld: expected %ld to %ld", what, v, lo, hi);
    return RWKV_OK;
}

static rwkv_status check_options(const struct rwkv_synth_options *o, const struct rwkv_synth_shape *s,
                                 struct rwkv_error *err)
{
    if (o->version < 4 || o->version > 7)
        return rwkv_fail(err, RWKV_ERR_ARG, "synthetic model: version %d: expected 4, 5, 6 or 7", o->version);
    if (o->dtype != RWKV_DTYPE_F16 && o->dtype != RWKV_DTYPE_F32 && o->dtype != RWKV_DTYPE_BF16)
        return rwkv_fail(err, RWKV_ERR_ARG, "synthetic model: dtype %s: expected F16, F32 or BF16",
                         rwkv_dtype_name(o->dtype));
    rwkv_status st = check_range("layers", o->n_layer, 1, MAX_LAYERS, err);
    if (!st)
        st = check_range("embd", o->n_embd, 1, MAX_EMBD, err);
    if (!st)
        st = check_range("vocab", s->n_vocab, 1, MAX_VOCAB, err);
    if (!st)
        st = check_range("ffn", s->n_ffn, 1, MAX_FFN, err);
    if (!st)
        st = check_range("head size", s->head_size, 1, MAX_HEAD, err);
    if (!st)
        st = check_range("threads", o->n_threads, 0, 256, err);
    if (st)
        return st;
    if (o->version >= 5 && o->n_embd % s->head_size != 0)
        return rwkv_fail(err, RWKV_ERR_ARG, "synthetic model: embd %d is not a multiple of the head size %d "
                         "(v%d splits the embedding into heads)", o->n_embd, s->head_size, o->version);
    return RWKV_OK;
}

/* RWKV-LM: v7 4 C; earlier versions 3.5 C rounded down to a multiple of 32 (at least 32). */
static int default_ffn(int version, int C)
{
    if (version == 7)
        return 4 * C;
    int f = C * 7 / 2 / 32 * 32;
    return f > 0 ? f : 32;
}

rwkv_status rwkv_synth_shape(const struct rwkv_synth_options *o, struct rwkv_synth_shape *s, struct rwkv_error *err)
{
    rwkv_error_clear(err);
    memset(s, 0, sizeof *s);
    if (!o)
        return rwkv_fail(err, RWKV_ERR_ARG, "synthetic model: options are NULL");
    int C = o->n_embd;
    s->version = o->version;
    s->n_layer = o->n_layer;
    s->n_embd = C;
    s->n_vocab = o->n_vocab ? o->n_vocab : 65536;
    s->head_size = o->head_size ? o->head_size : 64;
    s->n_ffn = o->n_ffn ? o->n_ffn : default_ffn(o->version, C);
    rwkv_status st = check_options(o, s, err);
    if (st)
        return st;
    s->n_head = o->version == 4 ? 1 : C / s->head_size;
    if (o->version == 4)
        s->head_size = C;
    if (o->version == 6) { /* RWKV-LM x060: 32 / 64, doubled at C 4096 */
        s->rank_mix = C >= 4096 ? 64 : 32;
        s->rank_decay = C >= 4096 ? 128 : 64;
    }
    if (o->version == 7)
        ranks_v7(s);
    for_each_recipe(s, count_one, s);
    s->n_bytes = s->n_params * (int64_t)rwkv_dtype_size(o->dtype);
    if (s->n_bytes > MAX_BYTES || (uint64_t)s->n_bytes > SIZE_MAX)
        return rwkv_fail(err, RWKV_ERR_ARG, "synthetic model: v%d L%d D%d V%d F%d needs %.1f GiB, more than the "
                         "%lld GiB this builder allows", o->version, o->n_layer, C, s->n_vocab, s->n_ffn,
                         (double)s->n_bytes / (1 << 30), (long long)(MAX_BYTES >> 30));
    return RWKV_OK;
}

/* ---- values ---- */

/* Where a tensor sits: what the depth- and channel-dependent initialisers need. */
struct place {
    const struct rwkv_synth_shape *s;
    int layer;
    double r0, r1; /* RWKV-LM's ratio_0_to_1 = l / (L - 1) and ratio_1_to_almost0 = 1 - l / L */
};

/* i / (n - 1), 0 for n = 1 */
static double frac(int64_t i, int64_t n)
{
    return n > 1 ? (double)i / (double)(n - 1) : 0.0;
}

/* v7's per-head zigzag: -1 .. 1 across a head, squared with its sign */
static double zigzag(int64_t i, int N)
{
    if (N < 2)
        return 0.0;
    double half = (N - 1) / 2.0, z = ((double)(i % N) - half) / half;
    return z * fabs(z);
}

/* Per-channel value i of a deterministic initialiser (C = its length). */
static double vector_value(const struct recipe *r, const struct place *p, int64_t i, int64_t C)
{
    double ddd = (double)i / (double)C, t = frac(i, C), zig3 = (double)((i + 1) % 3 - 1);
    switch (r->init) {
    case I_ONE: return 1.0;
    case I_ZERO: return 0.0;
    case I_LNX: return pow((p->layer + 1.0) / p->s->n_layer, 0.7);
    case I_MIX: return pow(ddd, r->a * p->r1) + r->b * p->r0;
    case I_MAA: return 1.0 - (pow(ddd, r->a * p->r1) + r->b * p->r0);
    case I_MAA4: return 1.0 - pow(ddd, pow(p->r1, 4));
    case I_DECAY4: return -5.0 + 8.0 * pow(t, 0.7 + 1.3 * p->r0);
    case I_DECAY5: return -6.0 + 5.0 * pow(t, 0.7 + 1.3 * p->r0);
    case I_FIRST4: return log(0.3) + 0.5 * zig3;
    case I_FIRST5: return p->r0 * (1.0 - t) + 0.1 * zig3;
    case I_W0: return -6.0 + 6.0 * pow(t, 1.0 + pow(p->r0, 0.3)) + 0.5 + 2.5 * zigzag(i, p->s->head_size);
    case I_LIN: return r->a + r->b * (t - 0.5);
    case I_A0: return r->a + r->b * (t - 0.5) + 0.3 * zigzag(i, p->s->head_size);
    default: return 0.0;
    }
}

/* Half-width of the uniform distribution of a random initialiser. */
static double uniform_half_width(const struct recipe *r, const struct rwkv_synth_shape *s, int64_t rows, int64_t cols)
{
    double std;
    switch (r->init) {
    case I_EMB: return 0.5;
    case I_HEAD: {
        double gain = s->n_vocab > s->n_embd ? 0.5 * sqrt((double)s->n_vocab / s->n_embd) : 0.5;
        std = gain / sqrt((double)(rows > cols ? rows : cols));
        break;
    }
    case I_UP: std = r->a / sqrt((double)rows); break;
    default: std = r->a / sqrt((double)(rows > cols ? rows : cols)); break;
    }
    return std * sqrt(3.0); /* uniform(-h, h) has std h / sqrt(3) */
}

static int is_random(enum init i)
{
    return i == I_EMB || i == I_HEAD || i == I_MAT || i == I_UP;
}

static void store(uint8_t *dst, enum rwkv_dtype dtype, const float *v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (dtype == RWKV_DTYPE_F32) {
            memcpy(dst + 4 * i, &v[i], 4);
        } else {
            uint16_t h = dtype == RWKV_DTYPE_F16 ? rwkv_f32_to_f16(v[i]) : rwkv_f32_to_bf16(v[i]);
            dst[2 * i] = (uint8_t)h;
            dst[2 * i + 1] = (uint8_t)(h >> 8);
        }
    }
}

/* One random tensor being filled by the pool, block by block. */
struct fill_job {
    uint8_t *data;
    enum rwkv_dtype dtype;
    int64_t numel;
    uint64_t seed;
    float half_width;
};

/* Random values are drawn at the precision they are stored in (the float's extra mantissa bits cleared,
 * rounding toward zero), so that the conversion is exact: rounding random bits to nearest takes an
 * unpredictable branch per element, 4x slower. */
static uint32_t precision_mask(enum rwkv_dtype dtype)
{
    return dtype == RWKV_DTYPE_F16 ? 0xffffe000u : dtype == RWKV_DTYPE_BF16 ? 0xffff0000u : 0xffffffffu;
}

static void fill_block(const struct fill_job *j, int64_t block)
{
    float buf[BLOCK];
    struct rwkv_rng r;
    rwkv_rng_seed(&r, j->seed + (uint64_t)block * 0x9e3779b97f4a7c15ull);
    int64_t start = block * BLOCK, n = j->numel - start < BLOCK ? j->numel - start : BLOCK;
    uint32_t mask = precision_mask(j->dtype), bits;
    for (int64_t i = 0; i < n; i++) {
        float v = j->half_width * rng_sym(&r);
        memcpy(&bits, &v, 4);
        bits &= mask;
        memcpy(&buf[i], &bits, 4);
    }
    store(j->data + (size_t)start * rwkv_dtype_size(j->dtype), j->dtype, buf, (size_t)n);
}

static void fill_worker(void *ctx, int index, int count)
{
    const struct fill_job *j = ctx;
    int64_t blocks = (j->numel + BLOCK - 1) / BLOCK;
    for (int64_t b = index; b < blocks; b += count)
        fill_block(j, b);
}

/* ---- building the table ---- */

struct build {
    const struct rwkv_synth_options *o;
    const struct rwkv_synth_shape *s;
    struct rwkv_tensor_table *t;
    struct rwkv_pool *pool;
    float *vec;        /* [n_embd] scratch for per-channel initialisers (every vector has C values) */
    struct rwkv_error *err;
};

static void fill_vector(struct build *b, const struct recipe *r, int layer, uint8_t *data, int64_t numel)
{
    const struct rwkv_synth_shape *s = b->s;
    struct place p = {s, layer < 0 ? 0 : layer, 0, 1};
    if (layer >= 0) {
        p.r0 = s->n_layer > 1 ? (double)layer / (s->n_layer - 1) : 0.0;
        p.r1 = 1.0 - (double)layer / s->n_layer;
    }
    for (int64_t i = 0; i < numel; i++)
        b->vec[i] = (float)vector_value(r, &p, i, numel);
    store(data, b->o->dtype, b->vec, (size_t)numel);
}

static void fill_random(struct build *b, const struct recipe *r, const struct rwkv_tensor *x)
{
    int64_t rows = x->shape[x->ndim - 2], cols = x->shape[x->ndim - 1];
    uint64_t seed = b->o->seed ^ name_hash(x->name);
    struct fill_job j = {(uint8_t *)x->data, x->dtype, rwkv_tensor_numel(x), rwkv_splitmix64(&seed),
                         (float)uniform_half_width(r, b->s, rows, cols)};
    if (b->pool && j.numel > 4 * BLOCK)
        rwkv_pool_run(b->pool, fill_worker, &j);
    else
        fill_worker(&j, 0, 1);
}

static rwkv_status add_tensor(void *ctx, const struct recipe *r, int layer)
{
    struct build *b = ctx;
    struct rwkv_tensor_table *t = b->t;
    struct rwkv_tensor *x = &t->tensors[t->n_tensors];
    char name[160];
    if (layer < 0)
        snprintf(name, sizeof name, "%s", r->name);
    else
        snprintf(name, sizeof name, "blocks.%d.%s", layer, r->name);
    int64_t numel = recipe_numel(b->s, r);
    size_t nbytes = (size_t)numel * rwkv_dtype_size(b->o->dtype);
    uint8_t *data = malloc(nbytes ? nbytes : 1);
    x->name = rwkv_strdup(name);
    if (!data || !x->name) {
        free(data);
        free(x->name);
        x->name = NULL;
        return rwkv_fail(b->err, RWKV_ERR_NOMEM, "%s: out of memory for tensor '%s' (%zu bytes)", t->path, name,
                         nbytes);
    }
    t->owned[t->n_owned++] = data;
    t->n_tensors++;
    x->dtype = b->o->dtype;
    x->ndim = r->ndim;
    for (int k = 0; k < r->ndim; k++)
        x->shape[k] = dim_value(b->s, r->dim[k]);
    x->data = data;
    x->nbytes = nbytes;
    if (is_random(r->init))
        fill_random(b, r, x);
    else
        fill_vector(b, r, layer, data, numel);
    return RWKV_OK;
}

static int by_name(const void *a, const void *b)
{
    return strcmp(((const struct rwkv_tensor *)a)->name, ((const struct rwkv_tensor *)b)->name);
}

static rwkv_status add_meta(struct rwkv_tensor_table *t, const char *key, const char *value, struct rwkv_error *err)
{
    struct rwkv_meta *m = &t->meta[t->n_meta];
    m->key = rwkv_strdup(key);
    m->value = rwkv_strdup(value);
    if (!m->key || !m->value) {
        free(m->key);
        free(m->value);
        return rwkv_fail(err, RWKV_ERR_NOMEM, "out of memory");
    }
    t->n_meta++;
    return RWKV_OK;
}

/* Allocates the table's arrays and names it. */
static rwkv_status table_init(struct rwkv_tensor_table *t, const struct rwkv_synth_options *o,
                              const struct rwkv_synth_shape *s, struct rwkv_error *err)
{
    char desc[160], opts[200];
    snprintf(desc, sizeof desc, "synthetic v%d L%d D%d", s->version, s->n_layer, s->n_embd);
    snprintf(opts, sizeof opts, "version=%d layers=%d embd=%d vocab=%d ffn=%d head_size=%d seed=%llu dtype=%s",
             s->version, s->n_layer, s->n_embd, s->n_vocab, s->n_ffn, s->head_size, (unsigned long long)o->seed,
             rwkv_dtype_name(o->dtype));
    t->path = rwkv_strdup(desc);
    t->tensors = calloc(s->n_tensors, sizeof *t->tensors);
    t->owned = calloc(s->n_tensors, sizeof *t->owned);
    t->meta = calloc(2, sizeof *t->meta);
    if (!t->path || !t->tensors || !t->owned || !t->meta)
        return rwkv_fail(err, RWKV_ERR_NOMEM, "out of memory");
    rwkv_status st = add_meta(t, "format", "pt", err); /* what web-rwkv's converter writes */
    if (!st)
        st = add_meta(t, "synth", opts, err);
    return st;
}

rwkv_status rwkv_synth_table(const struct rwkv_synth_options *o, struct rwkv_tensor_table *out,
                             struct rwkv_error *err)
{
    if (!out)
        return rwkv_fail(err, RWKV_ERR_ARG, "rwkv_synth_table: out is NULL");
    memset(out, 0, sizeof *out);
    struct rwkv_synth_shape s;
    rwkv_status st = rwkv_synth_shape(o, &s, err);
    if (st)
        return st;
    struct build b = {o, &s, out, NULL, malloc((size_t)s.n_embd * sizeof(float)), err};
    st = table_init(out, o, &s, err);
    if (!st && !b.vec)
        st = rwkv_fail(err, RWKV_ERR_NOMEM, "out of memory");
    if (!st && s.n_params > 16 * BLOCK)
        st = rwkv_pool_new(o->n_threads, &b.pool, err);
    if (!st)
        st = for_each_recipe(&s, add_tensor, &b);
    rwkv_pool_free(b.pool);
    free(b.vec);
    if (st) {
        rwkv_table_free(out);
        return st;
    }
    qsort(out->tensors, out->n_tensors, sizeof *out->tensors, by_name); /* safetensors' order */
    return RWKV_OK;
}

rwkv_status rwkv_synth_write(const struct rwkv_synth_options *o, const char *path, struct rwkv_error *err)
{
    if (!path)
        return rwkv_fail(err, RWKV_ERR_ARG, "rwkv_synth_write: path is NULL");
    struct rwkv_tensor_table t;
    rwkv_status st = rwkv_synth_table(o, &t, err);
    if (st)
        return st;
    st = rwkv_safetensors_write(path, t.tensors, t.n_tensors, t.meta, t.n_meta, err);
    rwkv_table_free(&t);
    return st;
}
