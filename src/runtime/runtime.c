/* Devices, states and the run loop: the chunk planner that spreads token_chunk_size tokens over the
 * slots with input, and hands one chunk at a time to the backend. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"
#include "core/error.h"

/* ---- devices ---- */

struct rwkv_device_options rwkv_device_default_options(void)
{
    struct rwkv_device_options o;
    memset(&o, 0, sizeof o);
    o.backend = RWKV_BACKEND_AUTO;
    o.device_index = -1;
    return o;
}

static rwkv_status open_with(const struct rwkv_backend_ops *ops, const struct rwkv_device_options *opt,
                             struct rwkv_device **out, struct rwkv_error *err)
{
    struct rwkv_device *dev = calloc(1, sizeof *dev);
    if (!dev)
        return rwkv_fail(err, RWKV_ERR_NOMEM, "out of memory");
    dev->ops = ops;
    dev->options = *opt;
    rwkv_status st = ops->device_open(dev, err);
    if (st) {
        free(dev);
        return st;
    }
    if (opt->verbose)
        fprintf(stderr, "rwkv: device: %s\n", dev->description);
    *out = dev;
    return RWKV_OK;
}

rwkv_status rwkv_device_open(const struct rwkv_device_options *options, struct rwkv_device **out,
                             struct rwkv_error *err)
{
    rwkv_error_clear(err);
    if (!out)
        return rwkv_fail(err, RWKV_ERR_ARG, "rwkv_device_open: out is NULL");
    *out = NULL;
    struct rwkv_device_options opt = options ? *options : rwkv_device_default_options();
    if (opt.n_threads < 0 || opt.n_threads > 256)
        return rwkv_fail(err, RWKV_ERR_ARG, "n_threads %d: expected 0 (all cores) to 256", opt.n_threads);
    switch (opt.backend) {
    case RWKV_BACKEND_CPU: return open_with(&rwkv_cpu_backend, &opt, out, err);
    case RWKV_BACKEND_VULKAN:
#ifdef RWKV_HAVE_VULKAN
        return open_with(&rwkv_vulkan_backend, &opt, out, err);
#else
        return rwkv_fail(err, RWKV_ERR_UNSUPPORTED, "this build has no Vulkan backend (Vulkan headers or glslc "
                         "were missing at build time)");
#endif
    case RWKV_BACKEND_AUTO: {
#ifdef RWKV_HAVE_VULKAN
        struct rwkv_error verr;
        if (open_with(&rwkv_vulkan_backend, &opt, out, &verr) == RWKV_OK)
            return RWKV_OK;
        if (opt.verbose)
            fprintf(stderr, "rwkv: no usable Vulkan device (%s); using the CPU\n", verr.message);
#endif
        return open_with(&rwkv_cpu_backend, &opt, out, err);
    }
    }
    return rwkv_fail(err, RWKV_ERR_ARG, "unknown backend %d", (int)opt.backend);
}

void rwkv_device_free(struct rwkv_device *device)
{
    if (!device)
        return;
    device->ops->device_free(device);
    free(device);
}

const char *rwkv_device_description(const struct rwkv_device *device)
{
    return device ? device->description : "";
}

enum rwkv_backend rwkv_device_backend(const struct rwkv_device *device)
{
    return device && strcmp(device->ops->name, "cpu") == 0 ? RWKV_BACKEND_CPU : RWKV_BACKEND_VULKAN;
}

rwkv_status rwkv_device_copy_bandwidth(struct rwkv_device *device, size_t bytes, double *gbps,
                                       struct rwkv_error *err)
{
    rwkv_error_clear(err);
    if (!device || !gbps || bytes == 0)
        return rwkv_fail(err, RWKV_ERR_ARG, "rwkv_device_copy_bandwidth: device, gbps and bytes are required");
    *gbps = 0;
    if (!device->ops->copy_bandwidth)
        return rwkv_fail(err, RWKV_ERR_UNSUPPORTED, "the %s backend cannot measure its copy bandwidth",
                         device->ops->name);
    return device->ops->copy_bandwidth(device, bytes, gbps, err);
}

/* ---- states ---- */

struct rwkv_state_options rwkv_state_default_options(void)
{
    struct rwkv_state_options o = {1, 256};
    return o;
}

void rwkv_state_initial(const struct rwkv_model *model, float *dst)
{
    const struct rwkv_model_info *in = &model->info;
    memset(dst, 0, model->program.state_floats * sizeof(float));
    if (in->arch != RWKV_ARCH_V4)
        return;
    size_t C = (size_t)in->n_embd, per_layer = model->program.state_floats / (size_t)in->n_layer;
    for (int l = 0; l < in->n_layer; l++) {
        float *pp = dst + (size_t)l * per_layer + C + 2 * C; /* att_shift, aa, bb, pp, ffn_shift */
        for (size_t c = 0; c < C; c++)
            pp[c] = -1e30f;
    }
}

void rwkv_state_free(struct rwkv_state *state)
{
    if (!state)
        return;
    if (state->priv)
        rwkv_backend_of(state->model->device)->state_free(state);
    free(state->tokens);
    free(state->seg_slot);
    free(state->seg_start);
    free(state->seg_len);
    free(state->out_rows);
    free(state->out_ptrs);
    free(state->take);
    free(state->token_slot);
    free(state->out_slot);
    free(state->out_softmax);
    free(state->hooks);
    free(state->own_logits);
    free(state);
}

rwkv_status rwkv_state_logits_area(struct rwkv_state *s, float **area, size_t *rows, struct rwkv_error *err)
{
    rwkv_error_clear(err);
    if (!s || !area || !rows)
        return rwkv_fail(err, RWKV_ERR_ARG, "rwkv_state_logits_area: state, area and rows are required");
    const struct rwkv_backend_ops *ops = rwkv_backend_of(s->model->device);
    float *a = ops->logits_area ? ops->logits_area(s) : NULL;
    size_t n = (size_t)s->token_chunk_size * (size_t)s->model->info.n_vocab;
    if (!a && !s->own_logits && !(s->own_logits = calloc(n, sizeof(float))))
        return rwkv_fail(err, RWKV_ERR_NOMEM, "rwkv_state_logits_area: out of memory for %zu floats", n);
    *area = a ? a : s->own_logits;
    *rows = (size_t)s->token_chunk_size;
    return RWKV_OK;
}

rwkv_status rwkv_state_new(const struct rwkv_model *model, const struct rwkv_state_options *options,
                           struct rwkv_state **out, struct rwkv_error *err)
{
    rwkv_error_clear(err);
    if (!out)
        return rwkv_fail(err, RWKV_ERR_ARG, "rwkv_state_new: out is NULL");
    *out = NULL;
    if (!model)
        return rwkv_fail(err, RWKV_ERR_ARG, "rwkv_state_new: model is NULL");
    struct rwkv_state_options o = options ? *options : rwkv_state_default_options();
    if (o.num_batch < 1 || o.num_batch > (1 << 20))
        return rwkv_fail(err, RWKV_ERR_ARG, "num_batch %d: expected 1 to %d", o.num_batch, 1 << 20);
    if (o.token_chunk_size < 1 || o.token_chunk_size > (1 << 20))
        return rwkv_fail(err, RWKV_ERR_ARG, "token_chunk_size %d: expected 1 to %d", o.token_chunk_size, 1 << 20);
    struct rwkv_state *s = calloc(1, sizeof *s);
    if (!s)
        return rwkv_fail(err, RWKV_ERR_NOMEM, "out of memory");
    s->model = model;
    s->num_batch = o.num_batch;
    s->token_chunk_size = o.token_chunk_size;
    size_t B = (size_t)o.num_batch, T = (size_t)o.token_chunk_size;
    s->tokens = malloc(T * sizeof *s->tokens);
    s->seg_slot = malloc(B * sizeof *s->seg_slot);
    s->seg_start = malloc(B * sizeof *s->seg_start);
    s->seg_len = malloc(B * sizeof *s->seg_len);
    s->out_rows = malloc(T * sizeof *s->out_rows);
    s->out_ptrs = malloc(T * sizeof *s->out_ptrs);
    s->take = malloc(B * sizeof *s->take);
    s->token_slot = malloc(T * sizeof *s->token_slot);
    s->out_slot = malloc(T * sizeof *s->out_slot);
    s->out_softmax = malloc(T * sizeof *s->out_softmax);
    if (!s->out_softmax ||
        !s->tokens || !s->seg_slot || !s->seg_start || !s->seg_len || !s->out_rows || !s->out_ptrs || !s->take ||
        !s->token_slot || !s->out_slot) {
        rwkv_state_free(s);
        return rwkv_fail(err, RWKV_ERR_NOMEM, "out of memory");
    }
    rwkv_status st = rwkv_backend_of(model->device)->state_init(s, err);
    if (st) {
        rwkv_state_free(s);
        return st;
    }
    *out = s;
    return RWKV_OK;
}

int rwkv_state_num_batch(const struct rwkv_state *state)
{
    return state ? state->num_batch : 0;
}

static rwkv_status check_slot(const struct rwkv_state *s, int slot, const char *what, struct rwkv_error *err)
{
    if (!s)
        return rwkv_fail(err, RWKV_ERR_ARG, "%s: state is NULL", what);
    if (slot < 0 || slot >= s->num_batch)
        return rwkv_fail(err, RWKV_ERR_ARG, "%s: slot %d out of range (num_batch %d)", what, slot, s->num_batch);
    return RWKV_OK;
}

rwkv_status rwkv_state_reset(struct rwkv_state *state, int slot, struct rwkv_error *err)
{
    rwkv_error_clear(err);
    if (slot != -1 && check_slot(state, slot, "rwkv_state_reset", err))
        return err ? err->code : RWKV_ERR_ARG;
    if (!state)
        return rwkv_fail(err, RWKV_ERR_ARG, "rwkv_state_reset: state is NULL");
    size_t n = state->model->program.state_floats;
    float *init = malloc(n * sizeof *init + 1);
    if (!init)
        return rwkv_fail(err, RWKV_ERR_NOMEM, "out of memory");
    rwkv_state_initial(state->model, init);
    rwkv_status st = RWKV_OK;
    for (int b = 0; b < state->num_batch && !st; b++)
        if (slot == -1 || slot == b)
            st = rwkv_backend_of(state->model->device)->state_write(state, b, init, err);
    free(init);
    return st;
}

/* A slot and a host buffer of exactly one slot's state. */
static rwkv_status check_transfer(const struct rwkv_state *s, int slot, const float *buf, size_t n,
                                  const char *what, struct rwkv_error *err)
{
    rwkv_status st = check_slot(s, slot, what, err);
    if (st)
        return st;
    if (!buf || n != s->model->program.state_floats)
        return rwkv_fail(err, RWKV_ERR_ARG, "%s: buffer of %zu floats, the state has %zu", what, buf ? n : 0,
                         s->model->program.state_floats);
    return RWKV_OK;
}

rwkv_status rwkv_state_read(const struct rwkv_state *state, int slot, float *dst, size_t n_floats,
                            struct rwkv_error *err)
{
    rwkv_error_clear(err);
    rwkv_status st = check_transfer(state, slot, dst, n_floats, "rwkv_state_read", err);
    if (st)
        return st;
    return rwkv_backend_of(state->model->device)->state_read(state, slot, dst, err);
}

rwkv_status rwkv_state_write(struct rwkv_state *state, int slot, const float *src, size_t n_floats,
                             struct rwkv_error *err)
{
    rwkv_error_clear(err);
    rwkv_status st = check_transfer(state, slot, src, n_floats, "rwkv_state_write", err);
    if (st)
        return st;
    for (size_t i = 0; i < n_floats; i++)
        if (isnan(src[i]))
            return rwkv_fail(err, RWKV_ERR_ARG, "rwkv_state_write: value %zu is NaN", i);
    return rwkv_backend_of(state->model->device)->state_write(state, slot, src, err);
}

rwkv_status rwkv_state_copy(struct rwkv_state *state, int src_slot, int dst_slot, struct rwkv_error *err)
{
    rwkv_error_clear(err);
    rwkv_status st = check_slot(state, src_slot, "rwkv_state_copy (source)", err);
    if (!st)
        st = check_slot(state, dst_slot, "rwkv_state_copy (destination)", err);
    if (st)
        return st;
    return rwkv_backend_of(state->model->device)->state_copy(state, src_slot, dst_slot, err);
}

/* ---- run ---- */

/* Water-filling share of `budget` tokens over slots with input: slots needing less than an equal share
 * get all they need, the rest split what remains equally; leftovers go round-robin from `start`. */
static size_t plan(const struct rwkv_slot_io *io, int n_io, size_t budget, int start, size_t *take)
{
    int active = 0;
    for (int i = 0; i < n_io; i++) {
        take[i] = 0;
        active += io[i].n_tokens > 0;
    }
    size_t left = budget;
    while (active > 0 && left > 0) {
        size_t share = left / (size_t)active;
        int settled = 0;
        for (int i = 0; i < n_io; i++) {
            size_t want = io[i].n_tokens - take[i];
            if (io[i].n_tokens > take[i] && want <= share && take[i] == 0) {
                take[i] = want;
                left -= want;
                active--;
                settled = 1;
            }
        }
        if (settled)
            continue;
        /* everyone wants more than `share`: give each `share`, then one more to the first `left % active` */
        size_t extra = left - share * (size_t)active;
        for (int k = 0; k < n_io; k++) {
            int i = (start + k) % n_io;
            if (io[i].n_tokens > 0 && take[i] == 0) {
                take[i] = share + (extra > 0);
                if (extra > 0)
                    extra--;
            }
        }
        left = 0;
    }
    return budget - left;
}

/* Logits rows a slot gets when `take` of its tokens run: one per token, or one when its last one runs. */
static size_t rows_for(const struct rwkv_slot_io *io, size_t take)
{
    if (io->output == RWKV_OUTPUT_ALL)
        return take;
    return io->output == RWKV_OUTPUT_LAST && take == io->n_tokens ? 1 : 0;
}

rwkv_status rwkv_state_run_stats(const struct rwkv_state *s, struct rwkv_run_stats *out, struct rwkv_error *err)
{
    rwkv_error_clear(err);
    if (!s || !out)
        return rwkv_fail(err, RWKV_ERR_ARG, "rwkv_state_run_stats: state and out are required");
    *out = s->stats;
    return RWKV_OK;
}

rwkv_status rwkv_run(struct rwkv_state *s, struct rwkv_slot_io *io, int n_io, struct rwkv_error *err)
{
    double t_start = rwkv_time_seconds();
    rwkv_error_clear(err);
    if (!s || (!io && n_io > 0))
        return rwkv_fail(err, RWKV_ERR_ARG, "rwkv_run: state and io are required");
    if (n_io < 0 || n_io > s->num_batch)
        return rwkv_fail(err, RWKV_ERR_ARG, "rwkv_run: %d slots given, the state has %d", n_io, s->num_batch);
    const struct rwkv_model *m = s->model;
    int V = m->info.n_vocab;
    for (int i = 0; i < n_io; i++) {
        io[i].consumed = io[i].rows_written = 0;
        if (io[i].n_tokens > 0 && !io[i].tokens)
            return rwkv_fail(err, RWKV_ERR_ARG, "rwkv_run: slot %d: %zu tokens but tokens is NULL", i, io[i].n_tokens);
        if ((unsigned)io[i].output > RWKV_OUTPUT_ALL)
            return rwkv_fail(err, RWKV_ERR_ARG, "rwkv_run: slot %d: unknown output mode %d", i, (int)io[i].output);
    }
    size_t T = plan(io, n_io, (size_t)s->token_chunk_size, n_io > 0 ? (int)(s->round_robin % (unsigned)n_io) : 0, s->take);
    if (T == 0)
        return RWKV_OK;
    int n_seg = 0, n_out = 0, any_softmax = 0;
    size_t t = 0;
    for (int i = 0; i < n_io; i++) {
        size_t take = s->take[i];
        if (take == 0)
            continue;
        size_t rows = rows_for(&io[i], take);
        if (rows > io[i].logits_rows || (rows > 0 && !io[i].logits))
            return rwkv_fail(err, RWKV_ERR_ARG, "rwkv_run: slot %d: needs %zu logits rows, %zu available", i, rows,
                             io[i].logits ? io[i].logits_rows : 0);
        for (size_t k = 0; k < take; k++) {
            int32_t tok = io[i].tokens[k];
            if (tok < 0 || tok >= V)
                return rwkv_fail(err, RWKV_ERR_TOKEN, "rwkv_run: slot %d: token %d at position %zu is outside the "
                                 "vocabulary (0..%d)", i, tok, k, V - 1);
            s->tokens[t + k] = tok;
            s->token_slot[t + k] = i;
        }
        s->seg_slot[n_seg] = i;
        s->seg_start[n_seg] = (int32_t)t;
        s->seg_len[n_seg] = (int32_t)take;
        n_seg++;
        for (size_t r = 0; r < rows; r++) {
            s->out_rows[n_out] = (int32_t)(io[i].output == RWKV_OUTPUT_LAST ? t + take - 1 : t + r);
            s->out_ptrs[n_out] = io[i].logits + r * (size_t)V;
            s->out_slot[n_out] = i;
            s->out_softmax[n_out] = io[i].probabilities != 0;
            any_softmax |= io[i].probabilities != 0;
            n_out++;
        }
        t += take;
    }
    struct rwkv_chunk chunk = {(int)T,      s->tokens,   n_seg,         s->seg_slot,   s->seg_start,
                               s->seg_len,  n_out,       s->out_rows,   s->token_slot, s->out_slot,
                               s->out_softmax, any_softmax};
    const struct rwkv_backend_ops *ops = rwkv_backend_of(m->device);
    rwkv_status st = ops->run(s, &chunk, s->out_ptrs, err);
    if (st)
        return st;
    for (int r = 0; any_softmax && !ops->softmax && r < n_out; r++)
        if (s->out_softmax[r])
            rwkv_softmax(s->out_ptrs[r], s->out_ptrs[r], (size_t)V);
    s->stats.runs++;
    s->stats.run_seconds += rwkv_time_seconds() - t_start;
    s->round_robin++;
    for (int i = 0; i < n_io; i++) {
        size_t take = s->take[i];
        if (take == 0)
            continue;
        size_t rows = rows_for(&io[i], take);
        io[i].tokens += take;
        io[i].n_tokens -= take;
        io[i].consumed = take;
        io[i].rows_written = rows;
        if (rows) {
            io[i].logits += rows * (size_t)V;
            io[i].logits_rows -= rows;
        }
    }
    return RWKV_OK;
}

/* ---- hooks ---- */

rwkv_status rwkv_state_add_hook(struct rwkv_state *state, const char *point, int layer, rwkv_hook_fn fn,
                                void *user, struct rwkv_error *err)
{
    rwkv_error_clear(err);
    if (!state || !point || !fn)
        return rwkv_fail(err, RWKV_ERR_ARG, "rwkv_state_add_hook: state, point and fn are required");
    if (strlen(point) >= sizeof state->hooks[0].point)
        return rwkv_fail(err, RWKV_ERR_ARG, "rwkv_state_add_hook: point name '%.40s' is too long", point);
    if (layer < -1 || layer >= state->model->info.n_layer)
        return rwkv_fail(err, RWKV_ERR_ARG, "rwkv_state_add_hook: layer %d out of range (-1 or 0..%d)", layer,
                         state->model->info.n_layer - 1);
    const struct rwkv_backend_ops *ops = rwkv_backend_of(state->model->device);
    if (!ops->supports_hooks)
        return rwkv_fail(err, RWKV_ERR_UNSUPPORTED, "hooks are not supported by the %s backend yet", ops->name);
    int known = strcmp(point, "*") == 0;
    for (int i = 0; i < state->model->program.n_ops && !known; i++) {
        const struct rwkv_op *op = &state->model->program.ops[i];
        known = op->kind == RWKV_OP_HOOK && strcmp(op->hook, point) == 0;
    }
    if (!known)
        return rwkv_fail(err, RWKV_ERR_ARG, "rwkv_state_add_hook: this model has no hook point '%s'", point);
    struct rwkv_hook *h = realloc(state->hooks, (size_t)(state->n_hooks + 1) * sizeof *h);
    if (!h)
        return rwkv_fail(err, RWKV_ERR_NOMEM, "out of memory");
    state->hooks = h;
    h += state->n_hooks++;
    snprintf(h->point, sizeof h->point, "%s", point);
    h->layer = layer;
    h->fn = fn;
    h->user = user;
    return RWKV_OK;
}

static int hook_matches(const struct rwkv_hook *h, const struct rwkv_op *op)
{
    return (strcmp(h->point, "*") == 0 || strcmp(h->point, op->hook) == 0) && (h->layer == -1 || h->layer == op->layer);
}

int rwkv_hooks_match(const struct rwkv_state *s, const struct rwkv_op *op)
{
    for (int i = 0; i < s->n_hooks; i++)
        if (hook_matches(&s->hooks[i], op))
            return 1;
    return 0;
}

int rwkv_hooks_call(struct rwkv_state *s, const struct rwkv_op *op, float *data, size_t rows, size_t width,
                    size_t stride, const int32_t *row_slot)
{
    for (int i = 0; i < s->n_hooks && rows > 0; i++) {
        const struct rwkv_hook *h = &s->hooks[i];
        struct rwkv_hook_data d = {op->hook, op->layer, data, rows, width, stride, row_slot, s};
        if (hook_matches(h, op) && h->fn(h->user, &d) != 0)
            return 1;
    }
    return 0;
}

void rwkv_state_clear_hooks(struct rwkv_state *state)
{
    if (!state)
        return;
    free(state->hooks);
    state->hooks = NULL;
    state->n_hooks = 0;
}

size_t rwkv_model_hook_points(const struct rwkv_model *model, const char **names, int *layers, size_t cap)
{
    size_t n = 0;
    for (int i = 0; model && i < model->program.n_ops; i++) {
        const struct rwkv_op *op = &model->program.ops[i];
        if (op->kind != RWKV_OP_HOOK)
            continue;
        if (n < cap) {
            if (names)
                names[n] = op->hook;
            if (layers)
                layers[n] = op->layer;
        }
        n++;
    }
    return n;
}

void rwkv_softmax(const float *logits, float *probs, size_t n)
{
    if (n == 0)
        return;
    float mx = logits[0];
    for (size_t i = 1; i < n; i++)
        mx = logits[i] > mx ? logits[i] : mx;
    double sum = 0;
    for (size_t i = 0; i < n; i++) {
        float e = expf(logits[i] - mx);
        probs[i] = e;
        sum += e;
    }
    float inv = (float)(1.0 / sum);
    for (size_t i = 0; i < n; i++)
        probs[i] *= inv;
}
