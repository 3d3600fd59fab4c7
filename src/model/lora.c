/* LoRA merging (web-rwkv / ai00 file layout, ../shared/cases/README.md) and matrix precision casts.
 *
 * Merging works on the model's tensor table before weights are built, so that merged vectors go
 * through the same transforms as the file's own. A merged matrix is held in float32: rounding it back
 * to F16 (what web-rwkv does) moves logits by up to 2e-2 on the test models. */
#include "model/lora.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"

/* Glob match with '*' (any run) and '?' (one char); NULL pattern matches everything. */
static int glob_match(const char *pat, const char *s)
{
    if (!pat)
        return 1;
    while (*pat) {
        if (*pat == '*') {
            while (*pat == '*')
                pat++;
            if (!*pat)
                return 1;
            for (; *s; s++)
                if (glob_match(pat, s))
                    return 1;
            return 0;
        }
        if (!*s || (*pat != '?' && *pat != *s))
            return 0;
        pat++;
        s++;
    }
    return *s == '\0';
}

static int is_mergeable_matrix(const char *name)
{
    int layer, n = 0;
    char part[8], kind[16];
    if (sscanf(name, "blocks.%d.%3[a-z].%15[a-z].weight%n", &layer, part, kind, &n) != 3 || name[n] != '\0')
        return 0;
    if (strcmp(part, "att") && strcmp(part, "ffn"))
        return 0;
    return !strcmp(kind, "key") || !strcmp(kind, "value") || !strcmp(kind, "receptance") || !strcmp(kind, "gate") ||
           !strcmp(kind, "output");
}

/* Replaces tensor i's data by an owned float32 copy (once), returning it. */
static float *own_f32(struct rwkv_tensor_table *t, struct rwkv_tensor *x, struct rwkv_error *err)
{
    size_t n = (size_t)rwkv_tensor_numel(x);
    if (x->dtype == RWKV_DTYPE_F32) {
        for (size_t i = 0; i < t->n_owned; i++)
            if (t->owned[i] == (void *)x->data)
                return (float *)x->data;
    }
    float *f = malloc(n * sizeof *f + 1);
    void **no = realloc(t->owned, (t->n_owned + 1) * sizeof *no);
    if (!f || !no) {
        free(f);
        if (no)
            t->owned = no;
        rwkv_fail(err, RWKV_ERR_NOMEM, "out of memory merging a LoRA into '%s'", x->name);
        return NULL;
    }
    t->owned = no;
    for (size_t i = 0; i < n; i++)
        f[i] = rwkv_tensor_get_f32(x, i);
    t->owned[t->n_owned++] = f;
    x->data = (const uint8_t *)f;
    x->dtype = RWKV_DTYPE_F32;
    x->nbytes = n * sizeof(float);
    return f;
}

/* a = lora.0 (in, r) = A^T, or with `a_is_rin` PyTorch's lora_A (r, in); b = lora.1 / lora_B (out, r). */
static rwkv_status merge_pair(struct rwkv_tensor_table *t, struct rwkv_tensor *w, const struct rwkv_tensor *a,
                              const struct rwkv_tensor *b, int a_is_rin, float alpha, const char *lpath,
                              struct rwkv_error *err)
{
    int64_t a_in = a->ndim == 2 ? a->shape[a_is_rin ? 1 : 0] : -1, a_r = a->ndim == 2 ? a->shape[a_is_rin ? 0 : 1] : -1;
    if (w->ndim != 2 || a->ndim != 2 || b->ndim != 2 || a_in != w->shape[1] || b->shape[0] != w->shape[0] ||
        a_r != b->shape[1] || a_r <= 0)
        return rwkv_fail(err, RWKV_ERR_MISMATCH,
                         "%s: LoRA for '%s' has lora.0 [%lld, %lld] and lora.1 [%lld, %lld]; the matrix is [%lld, "
                         "%lld] (lora.0 must be [in, r], lora.1 [out, r])",
                         lpath, w->name, (long long)a->shape[0], (long long)(a->ndim > 1 ? a->shape[1] : 0),
                         (long long)b->shape[0], (long long)(b->ndim > 1 ? b->shape[1] : 0), (long long)w->shape[0],
                         (long long)w->shape[1]);
    int64_t out = w->shape[0], in = w->shape[1], r = a_r;
    float *W = own_f32(t, w, err);
    float *A = malloc((size_t)(in * r) * sizeof *A), *B = malloc((size_t)(out * r) * sizeof *B);
    if (!W || !A || !B) {
        free(A);
        free(B);
        return W ? rwkv_fail(err, RWKV_ERR_NOMEM, "out of memory merging '%s'", w->name) : err->code;
    }
    for (int64_t i = 0; i < in; i++) /* A[i * r + k] = A^T, whatever the stored layout */
        for (int64_t k = 0; k < r; k++)
            A[i * r + k] = rwkv_tensor_get_f32(a, (size_t)(a_is_rin ? k * in + i : i * r + k));
    for (int64_t i = 0; i < out * r; i++)
        B[i] = rwkv_tensor_get_f32(b, (size_t)i);
    double scale = (double)alpha / (double)r;
    for (int64_t o = 0; o < out; o++)
        for (int64_t i = 0; i < in; i++) {
            double acc = 0;
            for (int64_t k = 0; k < r; k++)
                acc += (double)B[o * r + k] * A[i * r + k];
            W[o * in + i] = (float)((double)W[o * in + i] + scale * acc);
        }
    free(A);
    free(B);
    return RWKV_OK;
}

static rwkv_status merge_one(struct rwkv_tensor_table *t, const struct rwkv_lora_spec *spec, struct rwkv_error *err)
{
    struct rwkv_tensor_table l;
    rwkv_status st = rwkv_table_open(spec->path, &l, err);
    if (st)
        return rwkv_error_prefix(err, "LoRA");
    char name[256];
    int used = 0;
    /* factor pairs: web-rwkv's converted names, or PyTorch's (RWKV-PEFT / RWKV-LM-LoRA) */
    static const struct {
        const char *a, *b;
        int a_is_rin;
    } pairs[2] = {{".lora.0", ".lora.1", 0}, {".lora_A", ".lora_B", 1}};
    for (size_t i = 0; i < l.n_tensors && !st; i++) {
        const struct rwkv_tensor *x = &l.tensors[i];
        size_t len = strlen(x->name);
        int factor = 0;
        for (int p = 0; p < 2; p++) {
            size_t sl = strlen(pairs[p].a);
            if (len > sl && len - sl + 8 < sizeof name && strcmp(x->name + len - sl, pairs[p].a) == 0) {
                factor = 1;
                snprintf(name, sizeof name, "%.*s.weight", (int)(len - sl), x->name);
                struct rwkv_tensor *w = (struct rwkv_tensor *)rwkv_table_get(t, name);
                char bname[256];
                snprintf(bname, sizeof bname, "%.*s%s", (int)(len - sl), x->name, pairs[p].b);
                const struct rwkv_tensor *b = rwkv_table_get(&l, bname);
                if (w && b && is_mergeable_matrix(name) && glob_match(spec->pattern, name)) {
                    st = merge_pair(t, w, x, b, pairs[p].a_is_rin, spec->alpha, spec->path, err);
                    used++;
                }
            } else if (len > sl && strcmp(x->name + len - sl, pairs[p].b) == 0) {
                factor = 1; /* merged with its partner */
            }
        }
        if (factor || st)
            continue;
        struct rwkv_tensor *w = (struct rwkv_tensor *)rwkv_table_get(t, x->name);
        if (!w || !glob_match(spec->pattern, x->name) || strcmp(x->name, "emb.weight") == 0 ||
            strcmp(x->name, "head.weight") == 0)
            continue;
        if (rwkv_tensor_numel(w) != rwkv_tensor_numel(x)) {
            st = rwkv_fail(err, RWKV_ERR_MISMATCH, "%s: tensor '%s' has %lld elements, the model's has %lld",
                           spec->path, x->name, (long long)rwkv_tensor_numel(x), (long long)rwkv_tensor_numel(w));
            break;
        }
        float *dst = own_f32(t, w, err);
        if (!dst) {
            st = err ? err->code : RWKV_ERR_NOMEM;
            break;
        }
        int is_matrix = is_mergeable_matrix(x->name);
        for (size_t k = 0; k < (size_t)rwkv_tensor_numel(x); k++) {
            float v = rwkv_tensor_get_f32(x, k);
            dst[k] = is_matrix ? dst[k] + spec->alpha * v : v; /* full delta, or a replaced vector */
        }
        used++;
    }
    if (!st && used == 0)
        st = rwkv_fail(err, RWKV_ERR_MISMATCH, "%s: no tensor of this LoRA matches the model%s%s", spec->path,
                       spec->pattern ? " and pattern " : "", spec->pattern ? spec->pattern : "");
    rwkv_table_free(&l);
    return st;
}

rwkv_status rwkv_lora_merge_table(struct rwkv_tensor_table *t, const struct rwkv_lora_spec *loras, int n,
                                  struct rwkv_error *err)
{
    for (int i = 0; i < n; i++) {
        if (!loras[i].path)
            return rwkv_fail(err, RWKV_ERR_ARG, "LoRA %d: no path", i);
        if (!(loras[i].alpha == loras[i].alpha))
            return rwkv_fail(err, RWKV_ERR_ARG, "LoRA %s: alpha is NaN", loras[i].path);
        rwkv_status st = merge_one(t, &loras[i], err);
        if (st)
            return st;
    }
    return RWKV_OK;
}

rwkv_status rwkv_model_cast_matrices(struct rwkv_model *m, enum rwkv_dtype dtype, struct rwkv_error *err)
{
    if (dtype != RWKV_DTYPE_F32 && dtype != RWKV_DTYPE_F16 && dtype != RWKV_DTYPE_BF16)
        return rwkv_fail(err, RWKV_ERR_ARG, "matrix dtype %s: expected F32, F16 or BF16", rwkv_dtype_name(dtype));
    for (int i = 0; i < m->n_weights; i++) {
        struct rwkv_weight *w = &m->weights[i];
        if (w->ndim < 2 || w->dtype == dtype || strchr(w->name, ':'))
            continue;
        size_t n = w->nbytes / rwkv_dtype_size(w->dtype);
        void *dst = malloc(n * rwkv_dtype_size(dtype) + 1);
        if (!dst)
            return rwkv_fail(err, RWKV_ERR_NOMEM, "out of memory converting '%s'", w->name);
        struct rwkv_tensor src = {w->name, w->dtype, 1, {(int64_t)n}, w->data, w->nbytes};
        for (size_t k = 0; k < n; k++) {
            float f = rwkv_tensor_get_f32(&src, k);
            if (dtype == RWKV_DTYPE_F32)
                ((float *)dst)[k] = f;
            else
                ((uint16_t *)dst)[k] = dtype == RWKV_DTYPE_F16 ? rwkv_f32_to_f16(f) : rwkv_f32_to_bf16(f);
        }
        free(w->owned);
        w->owned = dst;
        w->data = dst;
        w->dtype = dtype;
        w->nbytes = n * rwkv_dtype_size(dtype);
        /* views ("name:k") follow their parent: slice k of 5 */
        size_t plen = strlen(w->name);
        for (int j = 0; j < m->n_weights; j++) {
            struct rwkv_weight *v = &m->weights[j];
            if (strncmp(v->name, w->name, plen) == 0 && v->name[plen] == ':') {
                int k = atoi(v->name + plen + 1);
                v->dtype = dtype;
                v->nbytes = w->nbytes / 5;
                v->data = (const uint8_t *)dst + (size_t)k * v->nbytes;
            }
        }
    }
    return RWKV_OK;
}
