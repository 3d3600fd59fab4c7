/* LoRA merging beyond the reference cases: PyTorch factor names (lora_A (r, in) / lora_B), several
 * LoRAs in order, name patterns, and malformed LoRA files. */
#include <stdlib.h>
#include <string.h>

#include "io/tensor_table.h"
#include "util/cases.h"

static struct rwkv_device *dev;
static int32_t tokens[] = {72, 101, 108, 108, 111, 44, 32, 119, 111, 114, 108, 100};
enum { NT = sizeof tokens / sizeof *tokens };

static rwkv_status run(const struct rwkv_lora_spec *specs, int n, float *out, struct rwkv_error *err)
{
    struct rwkv_model_options mo = rwkv_model_default_options();
    mo.loras = specs;
    mo.n_loras = n;
    struct rwkv_model *m;
    rwkv_status st = rwkv_model_load(dev, tu_shared("models/tiny-rwkv-7v0-834K.st"), &mo, &m, err);
    if (st)
        return st;
    st = tc_run(m, tokens, NT, 4, NULL, out, err);
    rwkv_model_free(m);
    return st;
}

/* Writes the public LoRA with lora.0 (in, r) transposed to lora_A (r, in) and lora.1 renamed lora_B. */
static void write_pytorch_names(const char *path)
{
    struct rwkv_tensor_table t;
    struct rwkv_error err;
    CHECK(rwkv_safetensors_open(tu_shared("lora/7v0-834K-r4.lora.st"), &t, &err) == RWKV_OK);
    struct rwkv_tensor *ts = calloc(t.n_tensors, sizeof *ts);
    char **names = calloc(t.n_tensors, sizeof *names);
    void **bufs = calloc(t.n_tensors, sizeof *bufs);
    for (size_t i = 0; i < t.n_tensors; i++) {
        ts[i] = t.tensors[i];
        size_t len = strlen(ts[i].name);
        names[i] = malloc(len + 4);
        strcpy(names[i], ts[i].name);
        if (strcmp(ts[i].name + len - 7, ".lora.1") == 0) {
            strcpy(names[i] + len - 7, ".lora_B");
        } else if (strcmp(ts[i].name + len - 7, ".lora.0") == 0) {
            strcpy(names[i] + len - 7, ".lora_A");
            int64_t in = ts[i].shape[0], r = ts[i].shape[1];
            uint16_t *src = (uint16_t *)malloc(ts[i].nbytes), *dst = malloc(ts[i].nbytes);
            memcpy(src, ts[i].data, ts[i].nbytes);
            for (int64_t a = 0; a < in; a++)
                for (int64_t k = 0; k < r; k++)
                    dst[k * in + a] = src[a * r + k];
            free(src);
            bufs[i] = dst;
            ts[i].data = (const uint8_t *)dst;
            ts[i].shape[0] = r;
            ts[i].shape[1] = in;
        }
        ts[i].name = names[i];
    }
    CHECK(rwkv_safetensors_write(path, ts, t.n_tensors, NULL, 0, &err) == RWKV_OK);
    for (size_t i = 0; i < t.n_tensors; i++) {
        free(names[i]);
        free(bufs[i]);
    }
    free(names);
    free(bufs);
    free(ts);
    rwkv_table_free(&t);
}

int main(void)
{
    dev = tc_cpu_device(0);
    struct rwkv_error err;
    size_t n = NT * 256;
    float *base = malloc(n * 4), *full = malloc(n * 4), *got = malloc(n * 4);
    char lora[512];
    snprintf(lora, sizeof lora, "%s", tu_shared("lora/7v0-834K-r4.lora.st"));
    CHECK(run(NULL, 0, base, &err) == RWKV_OK);
    struct rwkv_lora_spec one = {lora, 4.0f, NULL};
    CHECK(run(&one, 1, full, &err) == RWKV_OK);
    CHECK(tc_max_diff(base, full, n) > 0.05); /* the LoRA does something */

    const char *pt = tu_tmp("pt-names.lora.st");
    write_pytorch_names(pt);
    struct rwkv_lora_spec pts = {pt, 4.0f, NULL};
    CHECK(run(&pts, 1, got, &err) == RWKV_OK);
    CHECK_MSG(tc_max_diff(got, full, n) == 0, "lora_A/lora_B names: %.3g", tc_max_diff(got, full, n));
    remove(pt);

    struct rwkv_lora_spec two[2] = {{lora, 2.0f, NULL}, {lora, 2.0f, NULL}};
    CHECK(run(two, 2, got, &err) == RWKV_OK);
    CHECK_MSG(tc_max_diff(got, full, n) < 1e-4, "two halves = one whole: %.3g", tc_max_diff(got, full, n));

    struct rwkv_lora_spec part = {lora, 4.0f, "blocks.1?.*"}; /* layers 10, 11 only */
    CHECK(run(&part, 1, got, &err) == RWKV_OK);
    double d_base = tc_max_diff(got, base, n), d_full = tc_max_diff(got, full, n);
    CHECK_MSG(d_base > 1e-4 && d_full > 1e-4, "pattern selects a subset: %.3g %.3g", d_base, d_full);

    struct rwkv_lora_spec none = {lora, 4.0f, "blocks.99.*"};
    CHECK_ERR(run(&none, 1, got, &err), RWKV_ERR_MISMATCH, &err, "no tensor of this LoRA matches");
    struct rwkv_model_options mo = rwkv_model_default_options();
    mo.loras = &one; /* a C=64 LoRA on the C=128 v4 model */
    mo.n_loras = 1;
    struct rwkv_model *m4 = NULL;
    CHECK_ERR(rwkv_model_load(dev, tu_shared("models/tiny-rwkv-4v0-660K.st"), &mo, &m4, &err), RWKV_ERR_MISMATCH,
              &err, "lora.0 must be [in, r]");
    CHECK(m4 == NULL);
    struct rwkv_lora_spec missing = {tu_tmp("nope.st"), 1.0f, NULL};
    CHECK_ERR(run(&missing, 1, got, &err), RWKV_ERR_IO, &err, "LoRA");
    CHECK(tu_system("%s logits --model %s --lora %s:4 --tokens 1,2 --out %s", tu_cli(),
                    tu_shared("models/tiny-rwkv-7v0-834K.st"), lora, tu_tmp("l.bin")) == 0);
    remove(tu_tmp("l.bin"));
    free(base);
    free(full);
    free(got);
    rwkv_device_free(dev);
    return tu_finish("test_lora");
}
