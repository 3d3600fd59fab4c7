/* Official RWKV state dict -> web-rwkv layout (see convert.h for the rules). The reference is web-rwkv's
 * convert_safetensors.py; the shared test models are byte-identical to its output, and the tests check
 * that this file reproduces them tensor for tensor. */
#include "model/convert.h"

#include <stdlib.h>
#include <string.h>

#include "core/error.h"

/* Applied in this order, each to every occurrence (Python's str.replace), before lower-casing. */
static const char *const renames[][2] = {
    {"time_faaaa", "time_first"},
    {"time_maa", "time_mix"},
    {"lora_A", "lora.0"},
    {"lora_B", "lora.1"},
};

/* A tensor whose new name contains one of these has its last two dimensions swapped. The short names
 * (w1, a1, ...) are v7's LoRA-style matrices; the script's list also names the v6 ones in full. */
static const char *const transposed[] = {
    "time_mix_w1", "time_mix_w2", "time_decay_w1", "time_decay_w2", "w1", "w2", "a1", "a2",
    "g1",          "g2",          "v1",            "v2",            "time_state",    "lora.0",
};

#define N_OF(a) (sizeof(a) / sizeof((a)[0]))

struct plan {
    const struct rwkv_tensor *src;
    int transpose;  /* swap the last two dimensions */
    int64_t repeat; /* > 0: a [H] tensor becomes [H, repeat] */
};

static char *replace_all(const char *s, const char *from, const char *to)
{
    size_t fl = strlen(from), tl = strlen(to), n = 0;
    for (const char *p = strstr(s, from); p; p = strstr(p + fl, from))
        n++;
    char *out = malloc(strlen(s) + n * tl - n * fl + 1);
    if (!out)
        return NULL;
    char *o = out;
    for (const char *p; (p = strstr(s, from)) != NULL; s = p + fl) {
        memcpy(o, s, (size_t)(p - s));
        o += p - s;
        memcpy(o, to, tl);
        o += tl;
    }
    strcpy(o, s);
    return out;
}

/* Lower-cases ASCII only: the script's str.lower() also folds other letters, which no RWKV name has. */
static char *new_name(const char *name)
{
    char *cur = malloc(strlen(name) + 1);
    if (!cur)
        return NULL;
    strcpy(cur, name);
    for (size_t i = 0; i < N_OF(renames) && cur; i++) {
        char *next = strstr(cur, renames[i][0]) ? replace_all(cur, renames[i][0], renames[i][1]) : cur;
        if (next != cur)
            free(cur);
        cur = next;
    }
    for (char *p = cur; p && *p; p++)
        if (*p >= 'A' && *p <= 'Z')
            *p = (char)(*p - 'A' + 'a');
    return cur;
}

/* The script raises a version number while reading names in file order (ln_x: 5, gate.weight: 5.1, an
 * att.time_decay of shape [H, N>1]: 5.2, time_maa: 6) and only acts on exactly 5.1. With more than one
 * layer the order cannot change the outcome, so it is checked order-free here. */
static int is_gated_v5_1(const struct rwkv_tensor_table *in)
{
    int gate = 0, wide_decay = 0, v6 = 0;
    for (size_t i = 0; i < in->n_tensors; i++) {
        const struct rwkv_tensor *t = &in->tensors[i];
        gate |= strstr(t->name, "gate.weight") != NULL;
        v6 |= strstr(t->name, "time_maa") != NULL;
        wide_decay |= strstr(t->name, "att.time_decay") && t->ndim > 1 && t->shape[1] > 1;
    }
    return gate && !wide_decay && !v6;
}

/* v5.1 stores time_decay/time_faaaa per head ([H]); web-rwkv wants them per channel ([H, C/H]). */
static rwkv_status plan_repeat(const struct rwkv_tensor_table *in, struct plan *p, struct rwkv_error *err)
{
    const struct rwkv_tensor *emb = rwkv_table_get(in, "emb.weight"), *t = p->src;
    if (!strstr(t->name, "time_decay") && !strstr(t->name, "time_faaaa"))
        return RWKV_OK;
    if (!emb || emb->ndim != 2)
        return rwkv_fail(err, RWKV_ERR_MODEL, "%s: v5.1 checkpoint without a 2-D emb.weight", in->path);
    if (t->ndim != 1 || t->shape[0] <= 0)
        return rwkv_fail(err, RWKV_ERR_MODEL, "%s: tensor '%s': v5.1 expects a per-head vector [H]", in->path,
                         t->name);
    p->repeat = emb->shape[1] / t->shape[0];
    return RWKV_OK;
}

static int needs_transpose(const char *name)
{
    for (size_t i = 0; i < N_OF(transposed); i++)
        if (strstr(name, transposed[i]))
            return 1;
    return 0;
}

static void convert_element(uint8_t *dst, enum rwkv_dtype dtype, const struct rwkv_tensor *src, size_t i)
{
    size_t size = rwkv_dtype_size(dtype);
    if (src->dtype == dtype) { /* bit-exact, NaN payloads included (torch's .half() of a half tensor) */
        memcpy(dst, src->data + i * size, size);
        return;
    }
    float f = rwkv_tensor_get_f32(src, i);
    if (dtype == RWKV_DTYPE_F32) {
        memcpy(dst, &f, 4);
        return;
    }
    uint16_t h = dtype == RWKV_DTYPE_F16 ? rwkv_f32_to_f16(f) : rwkv_f32_to_bf16(f);
    memcpy(dst, &h, 2); /* little-endian host, as everywhere in the engine */
}

/* Fills out->shape/data: element (.., j, i) of a transposed tensor is element (.., i, j) of its source
 * (after the per-head repeat, which maps element p to source element p / repeat). */
static rwkv_status build(const struct plan *p, enum rwkv_dtype dtype, struct rwkv_tensor *out, void **owned,
                         const char *path, struct rwkv_error *err)
{
    const struct rwkv_tensor *src = p->src;
    out->dtype = dtype;
    out->ndim = src->ndim;
    memcpy(out->shape, src->shape, sizeof out->shape);
    if (p->repeat)
        out->shape[out->ndim++] = p->repeat;
    int64_t rows = 1, cols = 1;
    if (p->transpose) {
        rows = out->shape[out->ndim - 2];
        cols = out->shape[out->ndim - 1];
        out->shape[out->ndim - 2] = cols;
        out->shape[out->ndim - 1] = rows;
    }
    size_t numel = (size_t)rwkv_tensor_numel(out), size = rwkv_dtype_size(dtype), nbytes = numel * size;
    uint8_t *data = malloc(nbytes ? nbytes : 1);
    if (!data)
        return rwkv_fail(err, RWKV_ERR_NOMEM, "%s: tensor '%s': out of memory", path, out->name);
    *owned = data;
    size_t block = (size_t)(rows * cols);
    for (size_t o = 0; o < numel; o++) {
        size_t q = o;
        if (p->transpose) {
            size_t b = o / block, r = o % block;
            q = b * block + (r % (size_t)rows) * (size_t)cols + r / (size_t)rows;
        }
        convert_element(data + o * size, dtype, src, p->repeat ? q / (size_t)p->repeat : q);
    }
    out->data = data;
    out->nbytes = nbytes;
    return RWKV_OK;
}

static int cmp_by_name(const void *a, const void *b)
{
    return strcmp(((const struct rwkv_tensor *)a)->name, ((const struct rwkv_tensor *)b)->name);
}

static rwkv_status check_input(const struct rwkv_tensor_table *in, enum rwkv_dtype dtype, struct rwkv_error *err)
{
    if (dtype != RWKV_DTYPE_F16 && dtype != RWKV_DTYPE_F32 && dtype != RWKV_DTYPE_BF16)
        return rwkv_fail(err, RWKV_ERR_ARG, "convert: output dtype %s is not F16, F32 or BF16",
                         rwkv_dtype_name(dtype));
    for (size_t i = 0; i < in->n_tensors; i++) {
        enum rwkv_dtype d = in->tensors[i].dtype;
        if (d != RWKV_DTYPE_F16 && d != RWKV_DTYPE_F32 && d != RWKV_DTYPE_BF16)
            return rwkv_fail(err, RWKV_ERR_UNSUPPORTED, "%s: tensor '%s': cannot convert dtype %s", in->path,
                             in->tensors[i].name, rwkv_dtype_name(d));
    }
    return RWKV_OK;
}

static rwkv_status alloc_output(const struct rwkv_tensor_table *in, struct rwkv_tensor_table *out,
                                struct rwkv_error *err)
{
    size_t n = in->n_tensors ? in->n_tensors : 1;
    const char *path = in->path ? in->path : "(memory)";
    out->path = malloc(strlen(path) + 1);
    out->tensors = calloc(n, sizeof *out->tensors);
    out->owned = calloc(n, sizeof *out->owned);
    out->meta = calloc(1, sizeof *out->meta);
    if (out->meta) {
        out->n_meta = 1;
        out->meta[0].key = malloc(sizeof "format");
        out->meta[0].value = malloc(sizeof "pt");
    }
    if (!out->path || !out->tensors || !out->owned || !out->meta || !out->meta[0].key || !out->meta[0].value)
        return rwkv_fail(err, RWKV_ERR_NOMEM, "%s: out of memory", path);
    strcpy(out->path, path);
    strcpy(out->meta[0].key, "format");
    strcpy(out->meta[0].value, "pt");
    return RWKV_OK;
}

static rwkv_status convert_all(const struct rwkv_tensor_table *in, enum rwkv_dtype dtype,
                               struct rwkv_tensor_table *out, struct rwkv_error *err)
{
    int v5_1 = is_gated_v5_1(in);
    for (size_t i = 0; i < in->n_tensors; i++) {
        struct plan p = {.src = &in->tensors[i]};
        struct rwkv_tensor *t = &out->tensors[out->n_tensors];
        if (!(t->name = new_name(p.src->name)))
            return rwkv_fail(err, RWKV_ERR_NOMEM, "%s: out of memory", in->path);
        out->n_tensors++;
        rwkv_status st = v5_1 ? plan_repeat(in, &p, err) : RWKV_OK;
        /* torch's transpose(ndim-2, ndim-1) of a vector is a no-op */
        p.transpose = needs_transpose(t->name) && p.src->ndim + (p.repeat > 0) >= 2;
        if (!st)
            st = build(&p, dtype, t, &out->owned[out->n_owned], in->path, err);
        if (st)
            return st;
        out->n_owned++;
    }
    qsort(out->tensors, out->n_tensors, sizeof *out->tensors, cmp_by_name);
    for (size_t i = 1; i < out->n_tensors; i++)
        if (strcmp(out->tensors[i - 1].name, out->tensors[i].name) == 0)
            return rwkv_fail(err, RWKV_ERR_MODEL, "%s: two tensors are both converted to '%s'", in->path,
                             out->tensors[i].name);
    return RWKV_OK;
}

rwkv_status rwkv_convert_to_webrwkv(const struct rwkv_tensor_table *in, enum rwkv_dtype dtype,
                                    struct rwkv_tensor_table *out, struct rwkv_error *err)
{
    memset(out, 0, sizeof *out);
    rwkv_status st = check_input(in, dtype, err);
    if (!st)
        st = alloc_output(in, out, err);
    if (!st)
        st = convert_all(in, dtype, out, err);
    if (st)
        rwkv_table_free(out);
    return st;
}
