/* safetensors reader and writer.
 * Layout: u64 little-endian header length N, N bytes of JSON
 *   {"name": {"dtype": "F16", "shape": [..], "data_offsets": [begin, end]}, ..., "__metadata__": {..}}
 * then the data section; offsets are relative to it. Every offset, length, shape and dtype is checked
 * against the file size before a tensor is accepted; overlapping tensors are rejected. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "io/json.h"
#include "io/tensor_table.h"

#define ST_MAX_HEADER (100u << 20) /* the reference implementation's limit */

static int parse_dtype(const char *s, enum rwkv_dtype *out)
{
    for (int d = 0; d < RWKV_DTYPE_COUNT; d++)
        if (strcmp(s, rwkv_dtype_name((enum rwkv_dtype)d)) == 0) {
            *out = (enum rwkv_dtype)d;
            return 1;
        }
    return 0;
}

static int has_control(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            return 1;
    return 0;
}

static int cmp_by_offset(const void *a, const void *b)
{
    const struct rwkv_tensor *x = a, *y = b;
    return x->data < y->data ? -1 : x->data > y->data;
}

static rwkv_status parse_tensor(struct rwkv_tensor_table *t, const char *name, const struct json *desc,
                                const uint8_t *data, size_t data_size, struct rwkv_tensor *out,
                                struct rwkv_error *err)
{
    const char *path = t->path;
    if (desc->type != JSON_OBJECT)
        return rwkv_fail(err, RWKV_ERR_FORMAT, "%s: tensor '%s': description is not an object", path, name);
    const struct json *jd = json_get(desc, "dtype");
    const struct json *js = json_get(desc, "shape");
    const struct json *jo = json_get(desc, "data_offsets");
    if (!jd || jd->type != JSON_STRING)
        return rwkv_fail(err, RWKV_ERR_FORMAT, "%s: tensor '%s': missing dtype", path, name);
    if (!parse_dtype(jd->string, &out->dtype))
        return rwkv_fail(err, RWKV_ERR_FORMAT, "%s: tensor '%s': unsupported dtype '%.32s'", path, name,
                         jd->string);
    if (!js || js->type != JSON_ARRAY)
        return rwkv_fail(err, RWKV_ERR_FORMAT, "%s: tensor '%s': missing shape", path, name);
    if (js->len > RWKV_MAX_DIMS)
        return rwkv_fail(err, RWKV_ERR_FORMAT, "%s: tensor '%s': %zu dimensions (at most %d)", path, name,
                         js->len, RWKV_MAX_DIMS);
    out->ndim = (int)js->len;
    size_t numel = 1;
    for (size_t i = 0; i < js->len; i++) {
        int64_t d;
        if (!json_is_int(&js->items[i], &d) || d < 0)
            return rwkv_fail(err, RWKV_ERR_FORMAT, "%s: tensor '%s': bad dimension %zu", path, name, i);
        out->shape[i] = d;
        if (!rwkv_mul_size(numel, (size_t)d, &numel))
            return rwkv_fail(err, RWKV_ERR_FORMAT, "%s: tensor '%s': shape overflows", path, name);
    }
    size_t nbytes;
    if (!rwkv_mul_size(numel, rwkv_dtype_size(out->dtype), &nbytes))
        return rwkv_fail(err, RWKV_ERR_FORMAT, "%s: tensor '%s': size overflows", path, name);
    int64_t b, e;
    if (!jo || jo->type != JSON_ARRAY || jo->len != 2 || !json_is_int(&jo->items[0], &b) ||
        !json_is_int(&jo->items[1], &e) || b < 0 || e < b)
        return rwkv_fail(err, RWKV_ERR_FORMAT, "%s: tensor '%s': bad data_offsets", path, name);
    if ((uint64_t)e > data_size)
        return rwkv_fail(err, RWKV_ERR_FORMAT,
                         "%s: tensor '%s': data_offsets [%lld, %lld] beyond the data section (%zu bytes; "
                         "file truncated?)",
                         path, name, (long long)b, (long long)e, data_size);
    if ((uint64_t)(e - b) != nbytes)
        return rwkv_fail(err, RWKV_ERR_FORMAT,
                         "%s: tensor '%s': %lld bytes for %zu elements of %s (%zu bytes expected)", path, name,
                         (long long)(e - b), numel, rwkv_dtype_name(out->dtype), nbytes);
    out->data = data + b;
    out->nbytes = nbytes;
    out->name = rwkv_strdup(name);
    if (!out->name)
        return rwkv_fail(err, RWKV_ERR_NOMEM, "%s: out of memory", path);
    return RWKV_OK;
}

rwkv_status rwkv_safetensors_parse(struct rwkv_tensor_table *t, struct rwkv_error *err)
{
    const char *path = t->path;
    const uint8_t *p = t->map.data;
    size_t size = t->map.size;
    if (size < 8)
        return rwkv_fail(err, RWKV_ERR_FORMAT, "%s: %zu bytes: too short for a safetensors header", path, size);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--)
        hlen = (hlen << 8) | p[i];
    if (hlen > ST_MAX_HEADER)
        return rwkv_fail(err, RWKV_ERR_FORMAT, "%s: header length %llu exceeds the %u-byte limit", path,
                         (unsigned long long)hlen, ST_MAX_HEADER);
    if (hlen > size - 8)
        return rwkv_fail(err, RWKV_ERR_FORMAT, "%s: header length %llu but only %zu bytes follow (truncated?)",
                         path, (unsigned long long)hlen, size - 8);
    if (hlen < 2 || p[8] != '{')
        return rwkv_fail(err, RWKV_ERR_FORMAT, "%s: not a safetensors file (header is not a JSON object)", path);
    struct json *root;
    rwkv_status st = json_parse((const char *)p + 8, (size_t)hlen, path, &root, err);
    if (st)
        return st;
    const uint8_t *data = p + 8 + hlen;
    size_t data_size = size - 8 - (size_t)hlen;
    if (root->type != JSON_OBJECT) {
        json_free(root);
        return rwkv_fail(err, RWKV_ERR_FORMAT, "%s: header is not a JSON object", path);
    }
    t->tensors = calloc(root->len ? root->len : 1, sizeof *t->tensors);
    if (!t->tensors) {
        json_free(root);
        return rwkv_fail(err, RWKV_ERR_NOMEM, "%s: out of memory", path);
    }
    for (size_t i = 0; i < root->len; i++) {
        const char *key = root->keys[i];
        if (strlen(key) != root->key_lens[i] || has_control(key)) {
            /* names go into one-line error messages: no NUL, newline or other control bytes */
            st = rwkv_fail(err, RWKV_ERR_FORMAT, "%s: tensor name %zu has a control character", path, i);
            break;
        }
        if (strcmp(key, "__metadata__") == 0) {
            const struct json *m = &root->items[i];
            if (m->type != JSON_OBJECT) {
                st = rwkv_fail(err, RWKV_ERR_FORMAT, "%s: __metadata__ is not an object", path);
                break;
            }
            if (t->meta) {
                st = rwkv_fail(err, RWKV_ERR_FORMAT, "%s: __metadata__ appears twice", path);
                break;
            }
            t->meta = calloc(m->len ? m->len : 1, sizeof *t->meta);
            if (!t->meta) {
                st = rwkv_fail(err, RWKV_ERR_NOMEM, "%s: out of memory", path);
                break;
            }
            for (size_t k = 0; k < m->len && !st; k++) {
                if (m->items[k].type != JSON_STRING) {
                    st = rwkv_fail(err, RWKV_ERR_FORMAT, "%s: __metadata__ value '%s' is not a string", path,
                                   m->keys[k]);
                    break;
                }
                t->meta[k].key = rwkv_strdup(m->keys[k]);
                t->meta[k].value = rwkv_strdup(m->items[k].string);
                t->n_meta++;
                if (!t->meta[k].key || !t->meta[k].value)
                    st = rwkv_fail(err, RWKV_ERR_NOMEM, "%s: out of memory", path);
            }
            if (st)
                break;
            continue;
        }
        if (rwkv_table_find(t, key) >= 0) {
            st = rwkv_fail(err, RWKV_ERR_FORMAT, "%s: tensor '%s' appears twice", path, key);
            break;
        }
        st = parse_tensor(t, key, &root->items[i], data, data_size, &t->tensors[t->n_tensors], err);
        if (st)
            break;
        t->n_tensors++;
    }
    json_free(root);
    if (st)
        return st;
    /* reject overlapping data ranges (a hostile file could alias tensors) */
    if (t->n_tensors > 1) {
        struct rwkv_tensor *sorted = malloc(t->n_tensors * sizeof *sorted);
        if (!sorted)
            return rwkv_fail(err, RWKV_ERR_NOMEM, "%s: out of memory", path);
        memcpy(sorted, t->tensors, t->n_tensors * sizeof *sorted);
        qsort(sorted, t->n_tensors, sizeof *sorted, cmp_by_offset);
        for (size_t i = 1; i < t->n_tensors && !st; i++)
            if (sorted[i].nbytes && sorted[i - 1].data + sorted[i - 1].nbytes > sorted[i].data)
                st = rwkv_fail(err, RWKV_ERR_FORMAT, "%s: tensors '%s' and '%s' overlap", path,
                               sorted[i - 1].name, sorted[i].name);
        free(sorted);
    }
    return st;
}

rwkv_status rwkv_safetensors_open(const char *path, struct rwkv_tensor_table *out, struct rwkv_error *err)
{
    return rwkv_table_open_with(path, rwkv_safetensors_parse, out, err);
}

/* ---- writer ---- */

struct sbuf {
    char *p;
    size_t len, cap;
    int oom;
};

static void sb_put(struct sbuf *b, const char *s, size_t n)
{
    if (b->oom)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t nc = (b->cap ? b->cap * 2 : 4096);
        while (nc < b->len + n + 1)
            nc *= 2;
        char *np = realloc(b->p, nc);
        if (!np) {
            b->oom = 1;
            return;
        }
        b->p = np;
        b->cap = nc;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void sb_str(struct sbuf *b, const char *s)
{
    sb_put(b, s, strlen(s));
}

static void sb_json_string(struct sbuf *b, const char *s)
{
    sb_put(b, "\"", 1);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        char tmp[8];
        if (c == '"' || c == '\\') {
            tmp[0] = '\\';
            tmp[1] = (char)c;
            sb_put(b, tmp, 2);
        } else if (c < 0x20) {
            snprintf(tmp, sizeof tmp, "\\u%04x", c);
            sb_str(b, tmp);
        } else {
            sb_put(b, (const char *)&c, 1);
        }
    }
    sb_put(b, "\"", 1);
}

rwkv_status rwkv_safetensors_write(const char *path, const struct rwkv_tensor *tensors, size_t n,
                                   const struct rwkv_meta *meta, size_t n_meta, struct rwkv_error *err)
{
    struct sbuf h = {0};
    char num[96];
    size_t offset = 0;
    sb_str(&h, "{");
    if (n_meta) {
        sb_str(&h, "\"__metadata__\":{");
        for (size_t i = 0; i < n_meta; i++) {
            if (i)
                sb_str(&h, ",");
            sb_json_string(&h, meta[i].key);
            sb_str(&h, ":");
            sb_json_string(&h, meta[i].value);
        }
        sb_str(&h, "}");
    }
    for (size_t i = 0; i < n; i++) {
        const struct rwkv_tensor *t = &tensors[i];
        if (n_meta || i)
            sb_str(&h, ",");
        sb_json_string(&h, t->name);
        sb_str(&h, ":{\"dtype\":\"");
        sb_str(&h, rwkv_dtype_name(t->dtype));
        sb_str(&h, "\",\"shape\":[");
        for (int d = 0; d < t->ndim; d++) {
            snprintf(num, sizeof num, "%s%lld", d ? "," : "", (long long)t->shape[d]);
            sb_str(&h, num);
        }
        offset = (offset + 7) & ~(size_t)7; /* each tensor 8-byte aligned for typed access */
        snprintf(num, sizeof num, "],\"data_offsets\":[%zu,%zu]}", offset, offset + t->nbytes);
        sb_str(&h, num);
        offset += t->nbytes;
    }
    sb_str(&h, "}");
    /* pad the header with spaces so that the data section starts 8-byte aligned */
    while (!h.oom && (h.len + 8) % 8)
        sb_str(&h, " ");
    if (h.oom) {
        free(h.p);
        return rwkv_fail(err, RWKV_ERR_NOMEM, "%s: out of memory writing the header", path);
    }
    uint8_t len8[8];
    for (int i = 0; i < 8; i++)
        len8[i] = (uint8_t)((uint64_t)h.len >> (8 * i));
    static const uint8_t zeros[8] = {0};
    size_t n_parts = 2 * n + 2;
    const void **parts = malloc(n_parts * sizeof *parts);
    size_t *sizes = malloc(n_parts * sizeof *sizes);
    rwkv_status st;
    if (!parts || !sizes) {
        st = rwkv_fail(err, RWKV_ERR_NOMEM, "%s: out of memory", path);
    } else {
        parts[0] = len8;
        sizes[0] = 8;
        parts[1] = h.p;
        sizes[1] = h.len;
        size_t k = 2, pos = 0;
        for (size_t i = 0; i < n; i++) {
            size_t pad = (8 - pos % 8) % 8;
            parts[k] = zeros;
            sizes[k++] = pad;
            parts[k] = tensors[i].data;
            sizes[k++] = tensors[i].nbytes;
            pos += pad + tensors[i].nbytes;
        }
        st = rwkv_write_file_atomic(path, parts, sizes, n_parts, err);
    }
    free(parts);
    free(sizes);
    free(h.p);
    return st;
}
