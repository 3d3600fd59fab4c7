#include "util/cases.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

rwkv_status tc_run(struct rwkv_model *m, const int32_t *tokens, size_t n, int chunk, const char *time_state,
                   float *logits, struct rwkv_error *err)
{
    struct rwkv_state_options so = rwkv_state_default_options();
    so.token_chunk_size = chunk;
    struct rwkv_state *s;
    rwkv_status st = rwkv_state_new(m, &so, &s, err);
    if (st)
        return st;
    if (time_state)
        st = rwkv_state_load_time_state(s, 0, time_state, err);
    struct rwkv_slot_io io = {tokens, n, RWKV_OUTPUT_ALL, logits, n, 0, 0, 0};
    while (!st && io.n_tokens > 0)
        st = rwkv_run(s, &io, 1, err);
    rwkv_state_free(s);
    return st;
}

struct rwkv_device *tc_cpu_device(int n_threads)
{
    struct rwkv_device_options o = rwkv_device_default_options();
    o.backend = RWKV_BACKEND_CPU;
    o.n_threads = n_threads;
    struct rwkv_device *dev;
    struct rwkv_error err;
    if (rwkv_device_open(&o, &dev, &err)) {
        fprintf(stderr, "cannot open the CPU backend: %s\n", err.message);
        exit(1);
    }
    return dev;
}

float *tc_load_and_run(struct rwkv_device *dev, const char *path, const struct rwkv_model_options *mo,
                       const int32_t *tokens, size_t n, int chunk)
{
    struct rwkv_model *m;
    struct rwkv_error err;
    if (rwkv_model_load(dev, path, mo, &m, &err)) {
        fprintf(stderr, "%s\n", err.message);
        return NULL;
    }
    float *out = malloc((n ? n : 1) * (size_t)rwkv_model_get_info(m)->n_vocab * sizeof *out);
    if (out && tc_run(m, tokens, n, chunk, NULL, out, &err)) {
        fprintf(stderr, "%s\n", err.message);
        free(out);
        out = NULL;
    }
    rwkv_model_free(m);
    return out;
}

double tc_max_diff(const float *a, const float *b, size_t n)
{
    double mx = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        if (d != d)
            return INFINITY;
        if (d > mx)
            mx = d;
    }
    return mx;
}

float *tc_rows(const struct json *rows, size_t *n_rows, size_t *width)
{
    if (!rows || rows->type != JSON_ARRAY || rows->len == 0 || rows->items[0].type != JSON_ARRAY)
        return NULL;
    size_t w = rows->items[0].len;
    float *out = malloc(rows->len * w * sizeof *out);
    for (size_t r = 0; out && r < rows->len; r++)
        for (size_t i = 0; i < w && i < rows->items[r].len; i++)
            out[r * w + i] = (float)rows->items[r].items[i].number;
    *n_rows = rows->len;
    *width = w;
    return out;
}

/* Resolves a path of a case file ("../models/x.st", relative to cases/) against the shared folder. */
static const char *case_path(const char *rel)
{
    if (strncmp(rel, "../", 3) == 0)
        return tu_shared(rel + 3);
    char buf[512];
    snprintf(buf, sizeof buf, "cases/%s", rel);
    return tu_shared(buf);
}

static int run_file(struct rwkv_device *dev, const char *file, double tol, const char *label)
{
    char rel[256];
    snprintf(rel, sizeof rel, "cases/%s", file);
    struct json *j = tu_load_json(tu_shared(rel));
    const struct json *files = json_get(j, "files"), *cases = json_get(j, "cases");
    const struct json *lora = json_get(files, "lora"), *state = json_get(files, "state");
    static const char *const cols[2][2] = {{"fp16", "logits_fp16_weights"}, {"fp32", "logits_fp32_weights"}};
    int failures = 0;
    for (int c = 0; c < 2; c++) {
        const struct json *mf = json_get(files, cols[c][0]);
        if (!mf || mf->type != JSON_STRING) {
            failures++;
            fprintf(stderr, "%s: no %s file\n", file, cols[c][0]);
            continue;
        }
        char model_path[512];
        snprintf(model_path, sizeof model_path, "%s", case_path(mf->string));
        for (size_t k = 0; cases && k < cases->len; k++) {
            const struct json *cs = &cases->items[k];
            struct rwkv_model_options mo = rwkv_model_default_options();
            struct rwkv_lora_spec spec = {0};
            char lora_path[512];
            if (lora) {
                snprintf(lora_path, sizeof lora_path, "%s", case_path(lora->string));
                spec.path = lora_path;
                spec.alpha = (float)json_get(cs, "alpha")->number;
                mo.loras = &spec;
                mo.n_loras = 1;
            }
            struct rwkv_model *m;
            struct rwkv_error err;
            if (rwkv_model_load(dev, model_path, &mo, &m, &err)) {
                failures++;
                fprintf(stderr, "%s: %s\n", file, err.message);
                continue;
            }
            size_t nt, rows, width;
            int32_t *tokens = tu_json_ints(json_get(cs, "tokens"), &nt);
            float *want = tc_rows(json_get(cs, cols[c][1]), &rows, &width);
            float *got = malloc(nt * width * sizeof *got + 1);
            /* chunk sizes vary across cases to exercise chunking */
            int chunk = (int)(k % 3 == 0 ? 256 : k % 3 == 1 ? 7 : 1);
            char state_path[512];
            if (state)
                snprintf(state_path, sizeof state_path, "%s", case_path(state->string));
            rwkv_status st = tc_run(m, tokens, nt, chunk, state ? state_path : NULL, got, &err);
            double d = st ? INFINITY : tc_max_diff(got, want, nt * width);
            const char *name = json_get(cs, "name")->string;
            tu_checks++;
            if (st || rows != nt || width != (size_t)rwkv_model_get_info(m)->n_vocab || !(d <= tol)) {
                failures++;
                tu_failures++;
                fprintf(stderr, "FAIL %s %s %s/%s: max diff %.3g (tol %.3g) %s\n", label, file, name, cols[c][0], d,
                        tol, st ? err.message : "");
            } else {
                fprintf(stderr, "ok   %s %s %s/%s: %zu tokens, max diff %.3g\n", label, file, name, cols[c][0], nt, d);
            }
            free(tokens);
            free(want);
            free(got);
            rwkv_model_free(m);
        }
    }
    json_free(j);
    return failures;
}

int tc_run_all_cases(struct rwkv_device *dev, double tol, const char *label)
{
    static const char *const files[] = {
        "4v0-660K.json", "5v1-730K.json", "5v2-730K.json", "6v0-1m.json", "7v0-834K.json",
        "lora-7v0-834K.json", "lora-5v2-730K.json", "lora-vectors-7v0-834K.json",
        "state-6v0-1m.json", "state-7v0-834K.json",
    };
    int failures = 0;
    for (size_t i = 0; i < sizeof files / sizeof *files; i++)
        failures += run_file(dev, files[i], tol, label);
    return failures;
}
