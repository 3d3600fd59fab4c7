#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "io/tensor_table.h"

long rwkv_table_find(const struct rwkv_tensor_table *t, const char *name)
{
    for (size_t i = 0; i < t->n_tensors; i++)
        if (t->tensors[i].name && strcmp(t->tensors[i].name, name) == 0)
            return (long)i;
    return -1;
}

const struct rwkv_tensor *rwkv_table_get(const struct rwkv_tensor_table *t, const char *name)
{
    long i = rwkv_table_find(t, name);
    return i < 0 ? NULL : &t->tensors[i];
}

const char *rwkv_table_meta(const struct rwkv_tensor_table *t, const char *key)
{
    for (size_t i = 0; i < t->n_meta; i++)
        if (strcmp(t->meta[i].key, key) == 0)
            return t->meta[i].value;
    return NULL;
}

int64_t rwkv_tensor_numel(const struct rwkv_tensor *t)
{
    int64_t n = 1;
    for (int i = 0; i < t->ndim; i++)
        n *= t->shape[i];
    return n;
}

void rwkv_table_free(struct rwkv_tensor_table *t)
{
    if (!t)
        return;
    for (size_t i = 0; i < t->n_tensors; i++)
        free(t->tensors[i].name);
    free(t->tensors);
    for (size_t i = 0; i < t->n_meta; i++) {
        free(t->meta[i].key);
        free(t->meta[i].value);
    }
    free(t->meta);
    for (size_t i = 0; i < t->n_owned; i++)
        free(t->owned[i]);
    free(t->owned);
    rwkv_unmap_file(&t->map);
    free(t->path);
    memset(t, 0, sizeof *t);
}

/* Any file: a zip is a PyTorch checkpoint, anything else is read as safetensors. */
static rwkv_status parse_any(struct rwkv_tensor_table *t, struct rwkv_error *err)
{
    if (t->map.size >= 4 && memcmp(t->map.data, "PK\x03\x04", 4) == 0)
        return rwkv_pth_parse(t, err);
    return rwkv_safetensors_parse(t, err);
}

rwkv_status rwkv_table_open_with(const char *path, rwkv_table_parse_fn parse, struct rwkv_tensor_table *out,
                                 struct rwkv_error *err)
{
    memset(out, 0, sizeof *out);
    out->path = rwkv_strdup(path ? path : "(null)");
    if (!out->path)
        return rwkv_fail(err, RWKV_ERR_NOMEM, "out of memory");
    rwkv_status st = rwkv_map_file(path, &out->map, err);
    if (!st)
        st = parse(out, err);
    if (st)
        rwkv_table_free(out);
    return st;
}

rwkv_status rwkv_table_open(const char *path, struct rwkv_tensor_table *out, struct rwkv_error *err)
{
    return rwkv_table_open_with(path, parse_any, out, err);
}

float rwkv_tensor_get_f32(const struct rwkv_tensor *t, size_t i)
{
    const uint8_t *p = t->data + i * rwkv_dtype_size(t->dtype);
    switch (t->dtype) {
    case RWKV_DTYPE_F32: {
        float f;
        memcpy(&f, p, 4);
        return f;
    }
    case RWKV_DTYPE_F16: return rwkv_f16_to_f32((uint16_t)(p[0] | (p[1] << 8)));
    case RWKV_DTYPE_BF16: return rwkv_bf16_to_f32((uint16_t)(p[0] | (p[1] << 8)));
    case RWKV_DTYPE_I8: return (float)(int8_t)p[0];
    case RWKV_DTYPE_U8: return (float)p[0];
    default: return 0.0f;
    }
}
