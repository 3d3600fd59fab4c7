/* Hooks: user code reads and changes intermediate tensors at named points. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/cases.h"

struct counter {
    int calls, bad_slots;
    float add;
    const float *seen;
};

static int add_to_logits(void *user, const struct rwkv_hook_data *d)
{
    struct counter *c = user;
    c->calls++;
    for (size_t r = 0; r < d->rows; r++)
        for (size_t i = 0; i < d->width; i++)
            d->data[r * d->stride + i] += c->add;
    return 0;
}

static int count(void *user, const struct rwkv_hook_data *d)
{
    struct counter *c = user;
    c->calls++;
    for (size_t r = 0; r < d->rows; r++)
        if (d->row_slot[r] < 0 || d->row_slot[r] > 1)
            c->bad_slots++;
    return 0;
}

static int zero(void *user, const struct rwkv_hook_data *d)
{
    for (size_t r = 0; r < d->rows; r++)
        memset(d->data + r * d->stride, 0, d->width * sizeof(float));
    return 0;
}

static int stop(void *user, const struct rwkv_hook_data *d)
{
    return 1;
}

/* What each call of a hook saw: its point, layer, shape and sums, in call order. */
struct seen {
    char point[32];
    int layer;
    size_t rows, width;
    double sum, abs_sum;
};
struct trace {
    struct seen *calls;
    int n, cap;
};

static int trace(void *user, const struct rwkv_hook_data *d)
{
    struct trace *t = user;
    if (t->n == t->cap) {
        int nc = t->cap ? 2 * t->cap : 256;
        struct seen *c = realloc(t->calls, (size_t)nc * sizeof *c);
        if (!c)
            return 1;
        t->calls = c;
        t->cap = nc;
    }
    struct seen *s = &t->calls[t->n++];
    snprintf(s->point, sizeof s->point, "%s", d->point);
    s->layer = d->layer;
    s->rows = d->rows;
    s->width = d->width;
    s->sum = s->abs_sum = 0;
    for (size_t r = 0; r < d->rows; r++)
        for (size_t i = 0; i < d->width; i++) {
            s->sum += d->data[r * d->stride + i];
            s->abs_sum += fabs(d->data[r * d->stride + i]);
        }
    return 0;
}

static int halve(void *user, const struct rwkv_hook_data *d)
{
    for (size_t r = 0; r < d->rows; r++)
        for (size_t i = 0; i < d->width; i++)
            d->data[r * d->stride + i] *= 0.5f;
    return 0;
}

/* Runs two slots (6 and 5 tokens, `chunk` tokens per call) on `dev` with hooks (point, layer, fn,
 * user; NULL point ends the list); every token's logits into `logits` [11][V]. */
struct hook_spec {
    const char *point;
    int layer;
    rwkv_hook_fn fn;
    void *user;
};

static rwkv_status run_hooked(struct rwkv_model *m, int chunk, const struct hook_spec *h, float *logits,
                              struct rwkv_error *err)
{
    static const int32_t toks[11] = {10, 20, 30, 40, 50, 60, 70, 80, 90, 100, 110};
    int V = rwkv_model_get_info(m)->n_vocab;
    struct rwkv_state_options so = {2, chunk};
    struct rwkv_state *s;
    rwkv_status st = rwkv_state_new(m, &so, &s, err);
    for (; !st && h->point; h++)
        st = rwkv_state_add_hook(s, h->point, h->layer, h->fn, h->user, err);
    struct rwkv_slot_io io[2] = {{toks, 6, RWKV_OUTPUT_ALL, logits, 6, 0, 0, 0},
                                 {toks + 6, 5, RWKV_OUTPUT_ALL, logits + (size_t)6 * V, 5, 0, 0, 0}};
    while (!st && (io[0].n_tokens || io[1].n_tokens))
        st = rwkv_run(s, io, 2, err);
    rwkv_state_free(s);
    return st;
}

/* The Vulkan backend (chunks with hooks run in pieces) against the CPU: the same calls with the same
 * data, the same effect of changes, in prefill chunks and one-token steps; a change where Vulkan
 * fuses the point with the ops after it is refused. Skipped without a Vulkan device unless
 * RWKV_REQUIRE_VULKAN is set. */
static void vulkan_hooks(struct rwkv_device *cpu, struct rwkv_model *mc)
{
    struct rwkv_device_options o = rwkv_device_default_options();
    o.backend = RWKV_BACKEND_VULKAN;
    struct rwkv_device *vk = NULL;
    struct rwkv_model *mv = NULL;
    struct rwkv_error err;
    if (rwkv_device_open(&o, &vk, &err)) {
        CHECK_MSG(!getenv("RWKV_REQUIRE_VULKAN"), "no Vulkan device: %s", err.message);
        fprintf(stderr, "  (no Vulkan device: hooks on Vulkan not tested)\n");
        return;
    }
    if (rwkv_model_load(vk, tu_shared("models/tiny-rwkv-7v0-834K.st"), NULL, &mv, &err)) {
        CHECK_MSG(0, "%s", err.message);
        rwkv_device_free(vk);
        return;
    }
    int V = rwkv_model_get_info(mc)->n_vocab;
    float *lc = malloc((size_t)11 * V * sizeof(float)), *lv = malloc((size_t)11 * V * sizeof(float));
    CHECK(lc && lv);
    for (int chunk = 4; chunk >= 1 && lc && lv; chunk -= 3) { /* prefill pieces, then one-token steps */
        struct trace tc = {0}, tv = {0};
        struct hook_spec all_c[] = {{"*", -1, trace, &tc}, {NULL, 0, NULL, NULL}};
        struct hook_spec all_v[] = {{"*", -1, trace, &tv}, {NULL, 0, NULL, NULL}};
        CHECK(run_hooked(mc, chunk, all_c, lc, &err) == RWKV_OK);
        CHECK_MSG(run_hooked(mv, chunk, all_v, lv, &err) == RWKV_OK, "%s", err.message);
        int same = tc.n == tv.n && tc.n > 0;
        double worst = 0;
        for (int i = 0; same && i < tc.n; i++) {
            const struct seen *a = &tc.calls[i], *b = &tv.calls[i];
            same = !strcmp(a->point, b->point) && a->layer == b->layer && a->rows == b->rows && a->width == b->width;
            double e = fabs(a->sum - b->sum) / (1.0 + a->abs_sum / (double)(a->rows * a->width));
            worst = e > worst ? e : worst;
        }
        CHECK_MSG(same && worst < 1e-2, "chunk %d: %d hook calls on the CPU, %d on Vulkan, same points %d, "
                  "sums within %.2g", chunk, tc.n, tv.n, same, worst);
        CHECK_MSG(tc_max_diff(lc, lv, (size_t)11 * V) < 1e-3, "chunk %d: logits with read-only hooks", chunk);
        free(tc.calls);
        free(tv.calls);

        /* changes: halving a layer's decay and another's FFN key, and the logits + 1 */
        struct counter ac = {0, 0, 1.0f, NULL}, av = {0, 0, 1.0f, NULL};
        struct hook_spec ch_c[] = {{"att.decay", 0, halve, NULL}, {"ffn.key", 1, halve, NULL},
                                   {"head.out", -1, add_to_logits, &ac}, {NULL, 0, NULL, NULL}};
        struct hook_spec ch_v[] = {{"att.decay", 0, halve, NULL}, {"ffn.key", 1, halve, NULL},
                                   {"head.out", -1, add_to_logits, &av}, {NULL, 0, NULL, NULL}};
        float *plain = malloc((size_t)11 * V * sizeof(float));
        struct hook_spec none[] = {{NULL, 0, NULL, NULL}};
        CHECK(plain && run_hooked(mc, chunk, none, plain, &err) == RWKV_OK);
        CHECK(run_hooked(mc, chunk, ch_c, lc, &err) == RWKV_OK);
        CHECK_MSG(run_hooked(mv, chunk, ch_v, lv, &err) == RWKV_OK, "%s", err.message);
        CHECK_MSG(plain && tc_max_diff(lc, plain, (size_t)11 * V) > 1e-2,
                  "chunk %d: the changes change the CPU's logits", chunk);
        CHECK_MSG(tc_max_diff(lc, lv, (size_t)11 * V) < 1e-3 && ac.calls == av.calls,
                  "chunk %d: changed tensors: Vulkan logits within %.2g of the CPU's", chunk,
                  tc_max_diff(lc, lv, (size_t)11 * V));
        free(plain);
    }
    /* the layer norm before the fused shift and mixes: read, but not changed */
    struct hook_spec ln[] = {{"ffn.ln", 1, halve, NULL}, {NULL, 0, NULL, NULL}};
    CHECK(run_hooked(mc, 4, ln, lc, &err) == RWKV_OK);
    CHECK_ERR(run_hooked(mv, 4, ln, lv, &err), RWKV_ERR_UNSUPPORTED, &err, "changed ffn.ln (layer 1)");
    struct hook_spec st[] = {{"att.wkv", 0, stop, NULL}, {NULL, 0, NULL, NULL}};
    CHECK_ERR(run_hooked(mv, 4, st, lv, &err), RWKV_ERR_ARG, &err, "stopped by a hook at att.wkv (layer 0)");
    free(lc);
    free(lv);
    rwkv_model_free(mv);
    rwkv_device_free(vk);
}

int main(void)
{
    struct rwkv_device_options o = rwkv_device_default_options();
    o.backend = RWKV_BACKEND_CPU;
    struct rwkv_device *dev;
    struct rwkv_model *m;
    struct rwkv_error err;
    if (rwkv_device_open(&o, &dev, &err) || rwkv_model_load(dev, tu_shared("models/tiny-rwkv-7v0-834K.st"), NULL, &m, &err)) {
        fprintf(stderr, "%s\n", err.message);
        return 1;
    }
    int32_t toks[6] = {10, 20, 30, 40, 50, 60};
    float plain[6 * 256], got[6 * 256];
    CHECK(tc_run(m, toks, 6, 4, NULL, plain, &err) == RWKV_OK);

    struct rwkv_state_options so = {2, 4};
    struct rwkv_state *s;
    CHECK(rwkv_state_new(m, &so, &s, &err) == RWKV_OK);
    struct counter c = {0, 0, 1.0f, NULL};
    CHECK(rwkv_state_add_hook(s, "head.out", -1, add_to_logits, &c, &err) == RWKV_OK);
    struct rwkv_slot_io io[2] = {{toks, 6, RWKV_OUTPUT_ALL, got, 6, 0, 0, 0}};
    while (io[0].n_tokens)
        CHECK(rwkv_run(s, io, 1, &err) == RWKV_OK);
    int exact = 1;
    for (int i = 0; i < 6 * 256; i++)
        exact &= got[i] == plain[i] + 1.0f;
    CHECK_MSG(exact && c.calls == 2, "logits hook adds 1 to every logit (%d calls)", c.calls);

    /* all points, two slots: every row's slot is 0 or 1 */
    rwkv_state_clear_hooks(s);
    rwkv_state_reset(s, -1, &err);
    size_t n_points = rwkv_model_hook_points(m, NULL, NULL, 0);
    CHECK(n_points > 12 * 15);
    struct counter all = {0};
    CHECK(rwkv_state_add_hook(s, "*", -1, count, &all, &err) == RWKV_OK);
    io[0] = (struct rwkv_slot_io){toks, 3, RWKV_OUTPUT_LAST, got, 1, 0, 0, 0};
    io[1] = (struct rwkv_slot_io){toks + 3, 3, RWKV_OUTPUT_LAST, got + 256, 1, 0, 0, 0};
    while (io[0].n_tokens || io[1].n_tokens)
        CHECK(rwkv_run(s, io, 2, &err) == RWKV_OK);
    /* two chunks; the first completes no slot, so it has no logits rows and its 3 head points are skipped */
    CHECK_MSG(all.calls == (int)n_points * 2 - 3 && all.bad_slots == 0, "%d calls for %zu points", all.calls, n_points);

    /* zeroing one layer's attention output changes the result */
    rwkv_state_clear_hooks(s);
    rwkv_state_reset(s, -1, &err);
    CHECK(rwkv_state_add_hook(s, "att.wkv", 5, zero, NULL, &err) == RWKV_OK);
    io[0] = (struct rwkv_slot_io){toks, 6, RWKV_OUTPUT_ALL, got, 6, 0, 0, 0};
    memset(&io[1], 0, sizeof io[1]);
    while (io[0].n_tokens)
        CHECK(rwkv_run(s, io, 1, &err) == RWKV_OK);
    CHECK(tc_max_diff(got, plain, 6 * 256) > 1e-3);

    rwkv_state_clear_hooks(s);
    CHECK(rwkv_state_add_hook(s, "ffn.key", 2, stop, NULL, &err) == RWKV_OK);
    io[0] = (struct rwkv_slot_io){toks, 6, RWKV_OUTPUT_ALL, got, 6, 0, 0, 0};
    CHECK_ERR(rwkv_run(s, io, 1, &err), RWKV_ERR_ARG, &err, "stopped by a hook at ffn.key (layer 2)");
    CHECK_ERR(rwkv_state_add_hook(s, "att.nothing", -1, stop, NULL, &err), RWKV_ERR_ARG, &err, "no hook point");
    CHECK_ERR(rwkv_state_add_hook(s, "att.out", 12, stop, NULL, &err), RWKV_ERR_ARG, &err, "layer 12 out of range");
    CHECK_ERR(rwkv_state_add_hook(s, "att.out", 0, NULL, NULL, &err), RWKV_ERR_ARG, &err, "required");
    rwkv_state_free(s);
    vulkan_hooks(dev, m);
    rwkv_model_free(m);
    rwkv_device_free(dev);
    return tu_finish("test_hooks");
}
