/* Model builder: tensor table -> checked, transformed weights + the version's layer program.
 *
 * Every tensor a version needs is listed once in a spec table with its symbolic shape; the builder
 * checks each against the file, converts per-channel vectors to float32 (applying the transforms the
 * ops expect), and keeps matrices in their stored precision, pointing into the file mapping. */
#include "model/model.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"
#include "core/error.h"
#include "model/convert.h"
#include "model/lora.h"

/* Symbolic dimensions of the spec tables. */
enum dim { D_NONE, D_C, D_F, D_V, D_H, D_N, D_MIX, D_MIX5, D_DECAY, D_WL, D_AL, D_VL, D_GL, D_5 };

/* What the builder does with a tensor. */
enum wkind {
    W_MAT,            /* matrix, stored precision */
    W_VEC,            /* vector, float32 as stored */
    W_NEG_EXP,        /* v4 decay: -exp(x) */
    W_EXP_NEG_EXP,    /* v5.2 decay: exp(-exp(x)) */
    W_HEAD_DECAY,     /* v5.0: per-head exp(-exp(x[h])) broadcast to C channels */
    W_HEAD_EXP        /* v5.0: per-head exp(x[h]) broadcast to C channels */
};

struct wspec {
    const char *name; /* "att.key.weight" under blocks.L, or a global name when `global` */
    enum wkind kind;
    enum dim d0, d1, d2;
    int global;
    int optional_layer0; /* v7 v0/v1/v2 are absent from layer 0 */
};

#define MAT(n, a, b) {n, W_MAT, a, b, D_NONE, 0, 0}
#define VEC(n, a) {n, W_VEC, a, D_NONE, D_NONE, 0, 0}
#define VECK(n, k, a) {n, k, a, D_NONE, D_NONE, 0, 0}

static const struct wspec spec_global[] = {
    {"emb.weight", W_MAT, D_V, D_C, D_NONE, 1, 0},
    {"blocks.0.ln0.weight", W_VEC, D_C, D_NONE, D_NONE, 1, 0},
    {"blocks.0.ln0.bias", W_VEC, D_C, D_NONE, D_NONE, 1, 0},
    {"ln_out.weight", W_VEC, D_C, D_NONE, D_NONE, 1, 0},
    {"ln_out.bias", W_VEC, D_C, D_NONE, D_NONE, 1, 0},
    {"head.weight", W_MAT, D_V, D_C, D_NONE, 1, 0},
    {NULL, 0, 0, 0, 0, 0, 0},
};

#define LN_SPECS VEC("ln1.weight", D_C), VEC("ln1.bias", D_C), VEC("ln2.weight", D_C), VEC("ln2.bias", D_C)
#define ATT_RKVO MAT("att.receptance.weight", D_C, D_C), MAT("att.key.weight", D_C, D_C), \
    MAT("att.value.weight", D_C, D_C), MAT("att.output.weight", D_C, D_C)
#define FFN_KVR MAT("ffn.key.weight", D_F, D_C), MAT("ffn.value.weight", D_C, D_F), \
    MAT("ffn.receptance.weight", D_C, D_C)

static const struct wspec spec_v4[] = {
    LN_SPECS, ATT_RKVO, FFN_KVR,
    VEC("att.time_mix_k", D_C), VEC("att.time_mix_v", D_C), VEC("att.time_mix_r", D_C),
    VECK("att.time_decay", W_NEG_EXP, D_C), VEC("att.time_first", D_C),
    VEC("ffn.time_mix_k", D_C), VEC("ffn.time_mix_r", D_C),
    {NULL, 0, 0, 0, 0, 0, 0},
};

static const struct wspec spec_v50[] = {
    LN_SPECS, ATT_RKVO, FFN_KVR,
    VEC("att.time_mix_k", D_C), VEC("att.time_mix_v", D_C), VEC("att.time_mix_r", D_C),
    VECK("att.time_decay", W_HEAD_DECAY, D_H), VECK("att.time_first", W_HEAD_EXP, D_H),
    VEC("att.ln_x.weight", D_C), VEC("att.ln_x.bias", D_C),
    VEC("ffn.time_mix_k", D_C), VEC("ffn.time_mix_r", D_C),
    {NULL, 0, 0, 0, 0, 0, 0},
};

static const struct wspec spec_v52[] = {
    LN_SPECS, ATT_RKVO, FFN_KVR,
    VEC("att.time_mix_k", D_C), VEC("att.time_mix_v", D_C), VEC("att.time_mix_r", D_C),
    VEC("att.time_mix_g", D_C), MAT("att.gate.weight", D_C, D_C),
    VECK("att.time_decay", W_EXP_NEG_EXP, D_C), VEC("att.time_first", D_C),
    VEC("att.ln_x.weight", D_C), VEC("att.ln_x.bias", D_C),
    VEC("ffn.time_mix_k", D_C), VEC("ffn.time_mix_r", D_C),
    {NULL, 0, 0, 0, 0, 0, 0},
};

static const struct wspec spec_v6[] = {
    LN_SPECS, ATT_RKVO, FFN_KVR,
    VEC("att.time_mix_x", D_C), VEC("att.time_mix_w", D_C), VEC("att.time_mix_k", D_C),
    VEC("att.time_mix_v", D_C), VEC("att.time_mix_r", D_C), VEC("att.time_mix_g", D_C),
    MAT("att.time_mix_w1", D_MIX5, D_C), {"att.time_mix_w2", W_MAT, D_5, D_C, D_MIX, 0, 0},
    VEC("att.time_decay", D_C), MAT("att.time_decay_w1", D_DECAY, D_C), MAT("att.time_decay_w2", D_C, D_DECAY),
    VEC("att.time_first", D_C), MAT("att.gate.weight", D_C, D_C),
    VEC("att.ln_x.weight", D_C), VEC("att.ln_x.bias", D_C),
    VEC("ffn.time_mix_k", D_C), VEC("ffn.time_mix_r", D_C),
    {NULL, 0, 0, 0, 0, 0, 0},
};

static const struct wspec spec_v7[] = {
    LN_SPECS, ATT_RKVO,
    MAT("ffn.key.weight", D_F, D_C), MAT("ffn.value.weight", D_C, D_F), VEC("ffn.x_k", D_C),
    VEC("att.x_r", D_C), VEC("att.x_w", D_C), VEC("att.x_k", D_C), VEC("att.x_v", D_C), VEC("att.x_a", D_C),
    VEC("att.x_g", D_C), VEC("att.w0", D_C), MAT("att.w1", D_WL, D_C), MAT("att.w2", D_C, D_WL),
    VEC("att.a0", D_C), MAT("att.a1", D_AL, D_C), MAT("att.a2", D_C, D_AL),
    {"att.v0", W_VEC, D_C, D_NONE, D_NONE, 0, 1}, {"att.v1", W_MAT, D_VL, D_C, D_NONE, 0, 1},
    {"att.v2", W_MAT, D_C, D_VL, D_NONE, 0, 1},
    MAT("att.g1", D_GL, D_C), MAT("att.g2", D_C, D_GL),
    VEC("att.k_k", D_C), VEC("att.k_a", D_C), VEC("att.r_k", D_C),
    VEC("att.ln_x.weight", D_C), VEC("att.ln_x.bias", D_C),
    {NULL, 0, 0, 0, 0, 0, 0},
};

static const struct wspec *specs_for(enum rwkv_arch arch)
{
    switch (arch) {
    case RWKV_ARCH_V4: return spec_v4;
    case RWKV_ARCH_V5_0: return spec_v50;
    case RWKV_ARCH_V5_2: return spec_v52;
    case RWKV_ARCH_V6: return spec_v6;
    case RWKV_ARCH_V7: return spec_v7;
    }
    return NULL;
}

const char *rwkv_arch_name(enum rwkv_arch arch)
{
    switch (arch) {
    case RWKV_ARCH_V4: return "4";
    case RWKV_ARCH_V5_0: return "5.0";
    case RWKV_ARCH_V5_2: return "5.2";
    case RWKV_ARCH_V6: return "6";
    case RWKV_ARCH_V7: return "7";
    }
    return "?";
}

static int has(const struct rwkv_tensor_table *t, const char *name)
{
    return rwkv_table_find(t, name) >= 0;
}

rwkv_status rwkv_detect_arch(const struct rwkv_tensor_table *t, enum rwkv_arch *arch, struct rwkv_error *err)
{
    if (!has(t, "emb.weight") || !has(t, "blocks.0.att.key.weight"))
        return rwkv_fail(err, RWKV_ERR_MODEL, "%s: not an RWKV model (no emb.weight / blocks.0.att.key.weight)",
                         t->path);
    if (has(t, "blocks.0.att.r_k") || has(t, "blocks.0.att.x_r"))
        *arch = RWKV_ARCH_V7;
    else if (has(t, "blocks.0.att.time_mix_w1") || has(t, "blocks.0.att.time_maa_w1"))
        *arch = RWKV_ARCH_V6;
    else if (has(t, "blocks.0.att.ln_x.weight"))
        *arch = has(t, "blocks.0.att.gate.weight") ? RWKV_ARCH_V5_2 : RWKV_ARCH_V5_0;
    else if (has(t, "blocks.0.att.time_first") && has(t, "blocks.0.att.time_decay"))
        *arch = RWKV_ARCH_V4;
    else
        return rwkv_fail(err, RWKV_ERR_MODEL, "%s: unknown RWKV layout (blocks.0.att has none of the tensors "
                         "that identify v4, v5, v6 or v7)", t->path);
    return RWKV_OK;
}

/* ---- dimensions ---- */

struct dims {
    int64_t v[D_5 + 1];
};

static int64_t dim_of(const struct rwkv_tensor_table *t, const char *name, int axis)
{
    const struct rwkv_tensor *x = rwkv_table_get(t, name);
    if (!x || axis >= x->ndim)
        return -1;
    return x->shape[axis];
}

static rwkv_status detect_dims(const struct rwkv_tensor_table *t, enum rwkv_arch arch, struct rwkv_model_info *info,
                               struct dims *d, struct rwkv_error *err)
{
    const struct rwkv_tensor *emb = rwkv_table_get(t, "emb.weight");
    if (emb->ndim != 2 || emb->shape[0] <= 0 || emb->shape[1] <= 0)
        return rwkv_fail(err, RWKV_ERR_MODEL, "%s: tensor 'emb.weight': expected 2 dimensions [vocab, embd]", t->path);
    int64_t C = emb->shape[1], V = emb->shape[0];
    if (C > 65536 || V > (1 << 24))
        return rwkv_fail(err, RWKV_ERR_MODEL, "%s: tensor 'emb.weight': [%lld, %lld] is beyond the supported size",
                         t->path, (long long)V, (long long)C);
    int L = 0;
    char name[128];
    for (;;) {
        snprintf(name, sizeof name, "blocks.%d.ln1.weight", L);
        if (!has(t, name) || L >= 4096)
            break;
        L++;
    }
    if (L == 0)
        return rwkv_fail(err, RWKV_ERR_MODEL, "%s: missing tensor 'blocks.0.ln1.weight'", t->path);
    int64_t F = dim_of(t, "blocks.0.ffn.key.weight", 0);
    int64_t H = 1, N = C;
    switch (arch) {
    case RWKV_ARCH_V4: break;
    case RWKV_ARCH_V5_0: {
        const struct rwkv_tensor *td = rwkv_table_get(t, "blocks.0.att.time_decay");
        H = td ? rwkv_tensor_numel(td) : -1;
        break;
    }
    case RWKV_ARCH_V5_2:
    case RWKV_ARCH_V6: H = dim_of(t, "blocks.0.att.time_first", 0); break;
    case RWKV_ARCH_V7: H = dim_of(t, "blocks.0.att.r_k", 0); break;
    }
    if (H <= 0 || C % H != 0)
        return rwkv_fail(err, RWKV_ERR_MODEL, "%s: cannot derive the head count (got %lld for n_embd %lld)", t->path,
                         (long long)H, (long long)C);
    if (arch != RWKV_ARCH_V4)
        N = C / H;
    if (N > 1024)
        return rwkv_fail(err, RWKV_ERR_UNSUPPORTED, "%s: head size %lld: at most 1024 is supported", t->path,
                         (long long)N);
    if (F <= 0)
        return rwkv_fail(err, RWKV_ERR_MODEL, "%s: missing or misshapen tensor 'blocks.0.ffn.key.weight'", t->path);
    memset(d, 0, sizeof *d);
    d->v[D_C] = C;
    d->v[D_F] = F;
    d->v[D_V] = V;
    d->v[D_H] = H;
    d->v[D_N] = N;
    d->v[D_5] = 5;
    if (arch == RWKV_ARCH_V6) {
        int64_t m5 = dim_of(t, "blocks.0.att.time_mix_w1", 0);
        d->v[D_MIX5] = m5;
        d->v[D_MIX] = m5 / 5;
        d->v[D_DECAY] = dim_of(t, "blocks.0.att.time_decay_w1", 0);
        if (m5 <= 0 || m5 % 5 || d->v[D_DECAY] <= 0)
            return rwkv_fail(err, RWKV_ERR_MODEL, "%s: misshapen v6 time_mix_w1 / time_decay_w1", t->path);
        info->dim_mix = (int)d->v[D_MIX];
        info->dim_decay = (int)d->v[D_DECAY];
    }
    if (arch == RWKV_ARCH_V7) {
        d->v[D_WL] = dim_of(t, "blocks.0.att.w1", 0);
        d->v[D_AL] = dim_of(t, "blocks.0.att.a1", 0);
        d->v[D_GL] = dim_of(t, "blocks.0.att.g1", 0);
        d->v[D_VL] = L > 1 ? dim_of(t, "blocks.1.att.v1", 0) : 0;
        if (d->v[D_WL] <= 0 || d->v[D_AL] <= 0 || d->v[D_GL] <= 0 || (L > 1 && d->v[D_VL] <= 0))
            return rwkv_fail(err, RWKV_ERR_MODEL, "%s: missing or misshapen v7 LoRA tensors (w1/a1/g1/v1)", t->path);
        info->dim_mix = (int)d->v[D_WL];
        info->dim_decay = (int)d->v[D_AL];
        info->dim_value = (int)d->v[D_VL];
        info->dim_gate = (int)d->v[D_GL];
    }
    info->arch = arch;
    info->n_layer = L;
    info->n_embd = (int)C;
    info->n_head = (int)H;
    info->head_size = (int)N;
    info->n_ffn = (int)F;
    info->n_vocab = (int)V;
    return RWKV_OK;
}

/* ---- weights ---- */

static void weight_free(struct rwkv_weight *w)
{
    free(w->name);
    free(w->owned);
}

static void format_shape(char *buf, size_t n, int ndim, const int64_t *shape)
{
    size_t k = (size_t)snprintf(buf, n, "[");
    for (int i = 0; i < ndim && k < n; i++)
        k += (size_t)snprintf(buf + k, n - k, "%s%lld", i ? ", " : "", (long long)shape[i]);
    if (k < n)
        snprintf(buf + k, n - k, "]");
}

/* Checks a tensor against its spec: matrices exactly, vectors by element count (files store
 * per-channel vectors as [C], [1, 1, C] or [H, N]). */
static rwkv_status check_shape(const char *path, const struct rwkv_tensor *x, const struct wspec *s,
                               const struct dims *d, struct rwkv_error *err)
{
    enum dim ds[3] = {s->d0, s->d1, s->d2};
    int64_t want[3];
    int nd = 0;
    int64_t numel = 1;
    for (int i = 0; i < 3 && ds[i] != D_NONE; i++) {
        want[nd++] = d->v[ds[i]];
        numel *= d->v[ds[i]];
    }
    char got[96], exp[96];
    format_shape(got, sizeof got, x->ndim, x->shape);
    format_shape(exp, sizeof exp, nd, want);
    if (x->dtype != RWKV_DTYPE_F32 && x->dtype != RWKV_DTYPE_F16 && x->dtype != RWKV_DTYPE_BF16)
        return rwkv_fail(err, RWKV_ERR_MODEL, "%s: tensor '%s': dtype %s is not a float type (F32, F16, BF16)",
                         path, x->name, rwkv_dtype_name(x->dtype));
    if (s->kind == W_MAT) {
        int ok = x->ndim == nd;
        for (int i = 0; ok && i < nd; i++)
            ok = x->shape[i] == want[i];
        if (!ok)
            return rwkv_fail(err, RWKV_ERR_MODEL, "%s: tensor '%s': shape %s, expected %s", path, x->name, got, exp);
    } else if (rwkv_tensor_numel(x) != numel) {
        return rwkv_fail(err, RWKV_ERR_MODEL, "%s: tensor '%s': shape %s, expected %lld elements %s", path, x->name,
                         got, (long long)numel, exp);
    }
    return RWKV_OK;
}

static rwkv_status add_weight(struct rwkv_model *m, const struct rwkv_tensor *x, const struct wspec *s,
                              const char *name, struct rwkv_error *err)
{
    struct rwkv_weight *w = &m->weights[m->n_weights];
    memset(w, 0, sizeof *w);
    w->name = rwkv_strdup(name);
    if (!w->name)
        return rwkv_fail(err, RWKV_ERR_NOMEM, "out of memory");
    m->n_weights++;
    if (s->kind == W_MAT) {
        w->dtype = x->dtype;
        w->ndim = x->ndim;
        memcpy(w->shape, x->shape, sizeof w->shape);
        w->nbytes = x->nbytes;
        size_t align = rwkv_dtype_size(x->dtype);
        if (((uintptr_t)x->data % align) == 0) {
            w->data = x->data;
        } else { /* unaligned in the file: copy so that kernels can use typed loads */
            w->owned = malloc(x->nbytes ? x->nbytes : 1);
            if (!w->owned)
                return rwkv_fail(err, RWKV_ERR_NOMEM, "out of memory copying '%s'", name);
            memcpy(w->owned, x->data, x->nbytes);
            w->data = w->owned;
        }
        return RWKV_OK;
    }
    int64_t n = rwkv_tensor_numel(x);
    int64_t C = m->info.n_embd, N = m->info.head_size;
    int64_t out_n = (s->kind == W_HEAD_DECAY || s->kind == W_HEAD_EXP) ? C : n;
    float *v = malloc((size_t)(out_n ? out_n : 1) * sizeof *v);
    if (!v)
        return rwkv_fail(err, RWKV_ERR_NOMEM, "out of memory converting '%s'", name);
    for (int64_t i = 0; i < out_n; i++) {
        int64_t src = (s->kind == W_HEAD_DECAY || s->kind == W_HEAD_EXP) ? i / N : i;
        double a = rwkv_tensor_get_f32(x, (size_t)src);
        switch (s->kind) {
        case W_NEG_EXP: a = -exp(a); break;
        case W_EXP_NEG_EXP:
        case W_HEAD_DECAY: a = exp(-exp(a)); break;
        case W_HEAD_EXP: a = exp(a); break;
        default: break;
        }
        v[i] = (float)a;
    }
    w->dtype = RWKV_DTYPE_F32;
    w->ndim = 1;
    w->shape[0] = out_n;
    w->nbytes = (size_t)out_n * sizeof(float);
    w->owned = v;
    w->data = v;
    return RWKV_OK;
}

/* v6 time_mix_w2 [5][C][D] is used as five [C][D] matrices: add views (no copies). */
static rwkv_status add_slices(struct rwkv_model *m, int parent, struct rwkv_error *err)
{
    const struct rwkv_weight *p = &m->weights[parent];
    size_t slice = p->nbytes / 5;
    for (int f = 0; f < 5; f++) {
        struct rwkv_weight *w = &m->weights[m->n_weights];
        memset(w, 0, sizeof *w);
        size_t len = strlen(p->name) + 8;
        w->name = malloc(len);
        if (!w->name)
            return rwkv_fail(err, RWKV_ERR_NOMEM, "out of memory");
        snprintf(w->name, len, "%s:%d", p->name, f);
        w->dtype = p->dtype;
        w->ndim = 2;
        w->shape[0] = p->shape[1];
        w->shape[1] = p->shape[2];
        w->nbytes = slice;
        w->data = (const uint8_t *)p->data + (size_t)f * slice;
        m->n_weights++;
    }
    return RWKV_OK;
}

static size_t count_specs(const struct wspec *s)
{
    size_t n = 0;
    while (s[n].name)
        n++;
    return n;
}

static rwkv_status load_weights(struct rwkv_model *m, const struct dims *d, struct rwkv_error *err)
{
    const struct rwkv_tensor_table *t = &m->file;
    const struct wspec *layer_specs = specs_for(m->info.arch);
    size_t cap = count_specs(spec_global) + (size_t)m->info.n_layer * (count_specs(layer_specs) + 5);
    m->weights = calloc(cap, sizeof *m->weights);
    if (!m->weights)
        return rwkv_fail(err, RWKV_ERR_NOMEM, "out of memory");
    char name[160];
    for (int l = -1; l < m->info.n_layer; l++) {
        const struct wspec *specs = l < 0 ? spec_global : layer_specs;
        for (const struct wspec *s = specs; s->name; s++) {
            if (l < 0)
                snprintf(name, sizeof name, "%s", s->name);
            else
                snprintf(name, sizeof name, "blocks.%d.%s", l, s->name);
            const struct rwkv_tensor *x = rwkv_table_get(t, name);
            if (!x) {
                if (s->optional_layer0 && l == 0)
                    continue;
                return rwkv_fail(err, RWKV_ERR_MODEL, "%s: missing tensor '%s' (RWKV v%s layout)", t->path, name,
                                 rwkv_arch_name(m->info.arch));
            }
            rwkv_status st = check_shape(t->path, x, s, d, err);
            if (!st)
                st = add_weight(m, x, s, name, err);
            if (!st && l >= 0 && m->info.arch == RWKV_ARCH_V6 && strcmp(s->name, "att.time_mix_w2") == 0)
                st = add_slices(m, m->n_weights - 1, err);
            if (st)
                return st;
        }
    }
    return RWKV_OK;
}

static void compute_sizes(struct rwkv_model *m)
{
    struct rwkv_model_info *info = &m->info;
    info->n_params = info->n_params_layers = info->weight_bytes = 0;
    info->matrix_dtype = RWKV_DTYPE_F32;
    for (int i = 0; i < m->n_weights; i++) {
        const struct rwkv_weight *w = &m->weights[i];
        if (strchr(w->name, ':'))
            continue; /* a view of another weight */
        int64_t n = 1;
        for (int k = 0; k < w->ndim; k++)
            n *= w->shape[k];
        info->n_params += n;
        info->weight_bytes += (int64_t)w->nbytes;
        if (strncmp(w->name, "blocks.", 7) == 0)
            info->n_params_layers += n;
        if (strcmp(w->name, "head.weight") == 0) {
            info->head_bytes = (int64_t)w->nbytes;
            info->matrix_dtype = w->dtype;
        }
    }
    info->state_floats = m->program.state_floats;
}

void rwkv_model_free(struct rwkv_model *model)
{
    if (!model)
        return;
    if (model->backend && model->device)
        rwkv_backend_of(model->device)->model_free(model);
    rwkv_program_free(&model->program);
    for (int i = 0; i < model->n_weights; i++)
        weight_free(&model->weights[i]);
    free(model->weights);
    rwkv_table_free(&model->file);
    free(model);
}

struct rwkv_model_options rwkv_model_default_options(void)
{
    struct rwkv_model_options o;
    memset(&o, 0, sizeof o);
    o.matrix_dtype = RWKV_DTYPE_COUNT;
    return o;
}

const struct rwkv_model_info *rwkv_model_get_info(const struct rwkv_model *model)
{
    return model ? &model->info : NULL;
}

rwkv_status rwkv_model_build(struct rwkv_device *device, struct rwkv_tensor_table *table,
                             const struct rwkv_model_options *options, struct rwkv_model **out,
                             struct rwkv_error *err)
{
    struct rwkv_model_options defaults = rwkv_model_default_options();
    if (!options)
        options = &defaults;
    struct rwkv_model *m = calloc(1, sizeof *m);
    if (!m) {
        rwkv_table_free(table);
        return rwkv_fail(err, RWKV_ERR_NOMEM, "out of memory");
    }
    m->file = *table;
    memset(table, 0, sizeof *table);
    m->device = device;
    enum rwkv_arch arch;
    struct dims d;
    char why[256] = "";
    rwkv_status st = rwkv_detect_arch(&m->file, &arch, err);
    if (!st)
        st = detect_dims(&m->file, arch, &m->info, &d, err);
    if (!st && options->n_loras > 0)
        st = rwkv_lora_merge_table(&m->file, options->loras, options->n_loras, err);
    if (!st)
        st = load_weights(m, &d, err);
    if (!st && options->matrix_dtype != RWKV_DTYPE_COUNT)
        st = rwkv_model_cast_matrices(m, options->matrix_dtype, err);
    if (!st && !rwkv_program_build(m, why, sizeof why))
        st = rwkv_fail(err, RWKV_ERR_MODEL, "%s: %s", m->file.path, why);
    if (!st) {
        compute_sizes(m);
        st = rwkv_backend_of(device)->model_init(m, err);
    }
    if (st) {
        rwkv_model_free(m);
        return st;
    }
    *out = m;
    return RWKV_OK;
}

rwkv_status rwkv_model_load(struct rwkv_device *device, const char *path, const struct rwkv_model_options *options,
                            struct rwkv_model **out, struct rwkv_error *err)
{
    rwkv_error_clear(err);
    if (!out)
        return rwkv_fail(err, RWKV_ERR_ARG, "rwkv_model_load: out is NULL");
    *out = NULL;
    if (!device || !path)
        return rwkv_fail(err, RWKV_ERR_ARG, "rwkv_model_load: device and path are required");
    struct rwkv_tensor_table t;
    rwkv_status st = rwkv_table_open(path, &t, err);
    if (st)
        return st;
    if (t.map.size >= 4 && memcmp(t.map.data, "PK\x03\x04", 4) == 0) {
        /* an official PyTorch checkpoint: convert to web-rwkv's layout as its converter does (F16), or
         * keep float32 when that precision is asked for */
        enum rwkv_dtype dt = options && options->matrix_dtype == RWKV_DTYPE_F32 ? RWKV_DTYPE_F32 : RWKV_DTYPE_F16;
        struct rwkv_tensor_table c;
        st = rwkv_convert_to_webrwkv(&t, dt, &c, err);
        rwkv_table_free(&t);
        if (st)
            return st;
        t = c;
    }
    return rwkv_model_build(device, &t, options, out, err);
}

/* Saves the model as loaded: the file's tensors in web-rwkv layout with LoRAs merged (merged matrices
 * in float32), matrices in the precision held, plus metadata naming the engine and format. */
rwkv_status rwkv_model_save(const struct rwkv_model *model, const char *path, struct rwkv_error *err)
{
    rwkv_error_clear(err);
    if (!model || !path)
        return rwkv_fail(err, RWKV_ERR_ARG, "rwkv_model_save: model and path are required");
    const struct rwkv_tensor_table *t = &model->file;
    struct rwkv_tensor *out = malloc((t->n_tensors + 1) * sizeof *out);
    if (!out)
        return rwkv_fail(err, RWKV_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < t->n_tensors; i++) {
        out[i] = t->tensors[i];
        for (int k = 0; k < model->n_weights; k++) {
            const struct rwkv_weight *w = &model->weights[k];
            if (w->ndim >= 2 && strcmp(w->name, out[i].name) == 0) {
                out[i].dtype = w->dtype;
                out[i].data = w->data;
                out[i].nbytes = w->nbytes;
                break;
            }
        }
    }
    char arch[16];
    snprintf(arch, sizeof arch, "%s", rwkv_arch_name(model->info.arch));
    struct rwkv_meta meta[3] = {
        {"format", "pt"}, {"rwkv.saved_by", "rwkv-c " RWKV_VERSION_STRING}, {"rwkv.arch", arch},
    };
    rwkv_status st = rwkv_safetensors_write(path, out, t->n_tensors, meta, 3, err);
    free(out);
    return st;
}
