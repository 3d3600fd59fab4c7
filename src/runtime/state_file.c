/* State files.
 *
 * rwkv-c state file, format 1: safetensors with one F32 tensor "state" of shape [n_layer, per_layer]
 * holding one slot's state in the layout of rwkv_state_read, and metadata
 *   rwkv.state_format = "1", rwkv.arch = "7", rwkv.n_layer, rwkv.n_embd, rwkv.n_head, rwkv.head_size.
 * Loading checks every field against the model and names the first mismatch.
 *
 * time_state files (state tuning, web-rwkv): blocks.L.att.time_state [H, N, N] as T[h][key][value];
 * the token-shift parts of the slot start at zero. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"
#include "core/error.h"
#include "io/tensor_table.h"

struct field {
    const char *key;
    long value;
};

static void model_fields(const struct rwkv_model_info *in, struct field f[5])
{
    f[0] = (struct field){"rwkv.arch", in->arch};
    f[1] = (struct field){"rwkv.n_layer", in->n_layer};
    f[2] = (struct field){"rwkv.n_embd", in->n_embd};
    f[3] = (struct field){"rwkv.n_head", in->n_head};
    f[4] = (struct field){"rwkv.head_size", in->head_size};
}

rwkv_status rwkv_state_save(const struct rwkv_state *state, int slot, const char *path, struct rwkv_error *err)
{
    rwkv_error_clear(err);
    if (!state || !path)
        return rwkv_fail(err, RWKV_ERR_ARG, "rwkv_state_save: state and path are required");
    const struct rwkv_model_info *in = &state->model->info;
    size_t n = in->state_floats;
    float *buf = malloc(n * sizeof *buf + 1);
    if (!buf)
        return rwkv_fail(err, RWKV_ERR_NOMEM, "out of memory");
    rwkv_status st = rwkv_state_read(state, slot, buf, n, err);
    if (!st) {
        struct field f[5];
        model_fields(in, f);
        char vals[6][32];
        struct rwkv_meta meta[6];
        meta[0] = (struct rwkv_meta){"rwkv.state_format", "1"};
        for (int i = 0; i < 5; i++) {
            snprintf(vals[i], sizeof vals[i], "%ld", f[i].value);
            meta[i + 1] = (struct rwkv_meta){(char *)f[i].key, vals[i]};
        }
        struct rwkv_tensor t = {"state", RWKV_DTYPE_F32, 2, {in->n_layer, (int64_t)(n / (size_t)in->n_layer)},
                                (const uint8_t *)buf, n * sizeof(float)};
        st = rwkv_safetensors_write(path, &t, 1, meta, 6, err);
    }
    free(buf);
    return st;
}

rwkv_status rwkv_state_load(struct rwkv_state *state, int slot, const char *path, struct rwkv_error *err)
{
    rwkv_error_clear(err);
    if (!state || !path)
        return rwkv_fail(err, RWKV_ERR_ARG, "rwkv_state_load: state and path are required");
    const struct rwkv_model_info *in = &state->model->info;
    struct rwkv_tensor_table t;
    rwkv_status st = rwkv_safetensors_open(path, &t, err);
    if (st)
        return st;
    const char *format = rwkv_table_meta(&t, "rwkv.state_format");
    const struct rwkv_tensor *x = rwkv_table_get(&t, "state");
    if (!format || strcmp(format, "1") != 0 || !x) {
        st = rwkv_fail(err, RWKV_ERR_FORMAT, "%s: not an rwkv-c state file (format 1 with a 'state' tensor)%s", path,
                       rwkv_table_get(&t, "blocks.0.att.time_state") ? "; it is a time_state file: use --init-state"
                                                                      : "");
        goto done;
    }
    struct field f[5];
    model_fields(in, f);
    for (int i = 0; i < 5; i++) {
        const char *v = rwkv_table_meta(&t, f[i].key);
        char want[32];
        snprintf(want, sizeof want, "%ld", f[i].value);
        if (!v || strcmp(v, want) != 0) {
            st = rwkv_fail(err, RWKV_ERR_MISMATCH, "%s: state saved from another model: %s is %s, this model has %s",
                           path, f[i].key, v ? v : "(absent)", want);
            goto done;
        }
    }
    if (x->dtype != RWKV_DTYPE_F32 || (size_t)rwkv_tensor_numel(x) != in->state_floats) {
        st = rwkv_fail(err, RWKV_ERR_MISMATCH, "%s: tensor 'state' has %lld %s values, this model's state is %zu F32",
                       path, (long long)rwkv_tensor_numel(x), rwkv_dtype_name(x->dtype), in->state_floats);
        goto done;
    }
    float *buf = malloc(x->nbytes + 1);
    if (!buf) {
        st = rwkv_fail(err, RWKV_ERR_NOMEM, "out of memory");
        goto done;
    }
    memcpy(buf, x->data, x->nbytes);
    st = rwkv_state_write(state, slot, buf, in->state_floats, err);
    free(buf);
done:
    rwkv_table_free(&t);
    return st;
}

rwkv_status rwkv_state_load_time_state(struct rwkv_state *state, int slot, const char *path, struct rwkv_error *err)
{
    rwkv_error_clear(err);
    if (!state || !path)
        return rwkv_fail(err, RWKV_ERR_ARG, "rwkv_state_load_time_state: state and path are required");
    const struct rwkv_model_info *in = &state->model->info;
    if (in->arch == RWKV_ARCH_V4)
        return rwkv_fail(err, RWKV_ERR_UNSUPPORTED, "%s: RWKV v4 has no matrix state for a time_state file", path);
    if (slot < 0 || slot >= state->num_batch)
        return rwkv_fail(err, RWKV_ERR_ARG, "rwkv_state_load_time_state: slot %d out of range (num_batch %d)", slot,
                         state->num_batch);
    struct rwkv_tensor_table t;
    rwkv_status st = rwkv_safetensors_open(path, &t, err);
    if (st)
        return st;
    size_t C = (size_t)in->n_embd, H = (size_t)in->n_head, N = (size_t)in->head_size;
    size_t per_layer = in->state_floats / (size_t)in->n_layer;
    float *buf = calloc(in->state_floats + 1, sizeof *buf);
    if (!buf) {
        rwkv_table_free(&t);
        return rwkv_fail(err, RWKV_ERR_NOMEM, "out of memory");
    }
    char name[64];
    for (int l = 0; l < in->n_layer && !st; l++) {
        snprintf(name, sizeof name, "blocks.%d.att.time_state", l);
        const struct rwkv_tensor *x = rwkv_table_get(&t, name);
        if (!x) {
            st = rwkv_fail(err, RWKV_ERR_MISMATCH, "%s: missing tensor '%s' (the model has %d layers)", path, name,
                           in->n_layer);
            break;
        }
        if (x->ndim != 3 || (size_t)x->shape[0] != H || (size_t)x->shape[1] != N || (size_t)x->shape[2] != N ||
            (x->dtype != RWKV_DTYPE_F16 && x->dtype != RWKV_DTYPE_F32 && x->dtype != RWKV_DTYPE_BF16)) {
            st = rwkv_fail(err, RWKV_ERR_MISMATCH, "%s: tensor '%s' is %s [%lld...] with %d dims; expected a float "
                           "tensor [%zu, %zu, %zu]", path, name, rwkv_dtype_name(x->dtype),
                           (long long)(x->ndim ? x->shape[0] : 0), x->ndim, H, N, N);
            break;
        }
        float *S = buf + (size_t)l * per_layer + C;
        for (size_t h = 0; h < H; h++)
            for (size_t a = 0; a < N; a++)
                for (size_t b = 0; b < N; b++) {
                    float v = rwkv_tensor_get_f32(x, (h * N + a) * N + b); /* T[h][key a][value b] */
                    if (in->arch == RWKV_ARCH_V7)
                        S[(h * N + b) * N + a] = v; /* S[h][value][key] */
                    else
                        S[(h * N + a) * N + b] = v; /* S[h][key][value] */
                }
    }
    if (!st)
        st = rwkv_state_write(state, slot, buf, in->state_floats, err);
    free(buf);
    rwkv_table_free(&t);
    return st;
}
