/* Hooks: user code reads and changes intermediate tensors at named points. */
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
    rwkv_model_free(m);
    rwkv_device_free(dev);
    return tu_finish("test_hooks");
}
