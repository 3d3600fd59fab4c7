/* The CPU backend: executes layer programs with a thread pool. Weights are used in place (the model's
 * own arrays, often the file mapping); the state is float32 [num_batch][state_floats]. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"
#include "backend/cpu/cpu_kernels.h"
#include "core/error.h"
#include "core/platform.h"

struct cpu_device {
    struct rwkv_pool *pool;
    int n_threads;
};

struct cpu_state {
    float *state;           /* [num_batch][state_floats] */
    float *bufs[RWKV_MAX_BUFFERS];
    float *scratch;         /* per thread: 4 * max_cols floats */
    size_t scratch_per_thread;
};

/* ---- device ---- */

static rwkv_status cpu_device_open(struct rwkv_device *dev, struct rwkv_error *err)
{
    struct cpu_device *cd = calloc(1, sizeof *cd);
    if (!cd)
        return rwkv_fail(err, RWKV_ERR_NOMEM, "out of memory");
    const char *features = cpu_kernels_init();
    rwkv_status st = rwkv_pool_new(dev->options.n_threads, &cd->pool, err);
    if (st) {
        free(cd);
        return st;
    }
    cd->n_threads = rwkv_pool_size(cd->pool);
    dev->priv = cd;
    snprintf(dev->description, sizeof dev->description, "cpu (%d threads, %s)", cd->n_threads, features);
    return RWKV_OK;
}

static void cpu_device_free(struct rwkv_device *dev)
{
    struct cpu_device *cd = dev->priv;
    if (cd) {
        rwkv_pool_free(cd->pool);
        free(cd);
    }
}

static rwkv_status cpu_model_init(struct rwkv_model *model, struct rwkv_error *err)
{
    model->backend = (struct rwkv_backend_model *)model; /* nothing to upload: non-NULL marks "initialised" */
    return RWKV_OK;
}

static void cpu_model_free(struct rwkv_model *model)
{
    model->backend = NULL;
}

/* ---- state ---- */

static void cpu_state_free(struct rwkv_state *s)
{
    struct cpu_state *cs = s->priv;
    if (!cs)
        return;
    free(cs->state);
    for (int i = 0; i < RWKV_MAX_BUFFERS; i++)
        free(cs->bufs[i]);
    free(cs->scratch);
    free(cs);
    s->priv = NULL;
}

static rwkv_status cpu_state_init(struct rwkv_state *s, struct rwkv_error *err)
{
    const struct rwkv_model *m = s->model;
    const struct rwkv_program *p = &m->program;
    struct cpu_device *cd = m->device->priv;
    struct cpu_state *cs = calloc(1, sizeof *cs);
    if (!cs)
        return rwkv_fail(err, RWKV_ERR_NOMEM, "out of memory");
    s->priv = cs;
    size_t n;
    if (!rwkv_mul_size((size_t)s->num_batch, p->state_floats, &n) || !(cs->state = malloc(n * sizeof(float) + 1)))
        goto oom;
    for (int i = 0; i < p->n_buffers; i++) {
        if (!rwkv_mul_size((size_t)s->token_chunk_size, (size_t)p->buffers[i].width, &n) ||
            !(cs->bufs[i] = calloc(n ? n : 1, sizeof(float))))
            goto oom;
    }
    size_t max_cols = 1;
    for (int i = 0; i < m->n_weights; i++)
        if (m->weights[i].ndim >= 2 && (size_t)rwkv_weight_cols(&m->weights[i]) > max_cols)
            max_cols = (size_t)rwkv_weight_cols(&m->weights[i]);
    cs->scratch_per_thread = 4 * max_cols + 64;
    if (!(cs->scratch = malloc(cs->scratch_per_thread * (size_t)cd->n_threads * sizeof(float))))
        goto oom;
    for (int b = 0; b < s->num_batch; b++)
        rwkv_state_initial(m, cs->state + (size_t)b * p->state_floats);
    return RWKV_OK;
oom:
    cpu_state_free(s);
    return rwkv_fail(err, RWKV_ERR_NOMEM, "out of memory allocating state for %d slots x %d tokens", s->num_batch,
                     s->token_chunk_size);
}

static rwkv_status cpu_state_read(const struct rwkv_state *s, int slot, float *dst, struct rwkv_error *err)
{
    const struct cpu_state *cs = s->priv;
    size_t n = s->model->program.state_floats;
    memcpy(dst, cs->state + (size_t)slot * n, n * sizeof(float));
    return RWKV_OK;
}

static rwkv_status cpu_state_write(struct rwkv_state *s, int slot, const float *src, struct rwkv_error *err)
{
    struct cpu_state *cs = s->priv;
    size_t n = s->model->program.state_floats;
    memcpy(cs->state + (size_t)slot * n, src, n * sizeof(float));
    return RWKV_OK;
}

static rwkv_status cpu_state_copy(struct rwkv_state *s, int src, int dst, struct rwkv_error *err)
{
    struct cpu_state *cs = s->priv;
    size_t n = s->model->program.state_floats;
    if (src != dst)
        memcpy(cs->state + (size_t)dst * n, cs->state + (size_t)src * n, n * sizeof(float));
    return RWKV_OK;
}

/* ---- execution ---- */

struct exec {
    const struct rwkv_model *model;
    struct rwkv_state *s;
    struct cpu_state *cs;
    const struct rwkv_chunk *chunk;
    const struct rwkv_op *op;
    float *const *rows; /* final logits destinations */
};

static struct cpu_mat view(const struct exec *e, struct rwkv_view v)
{
    struct cpu_mat m = {NULL, 0};
    if (v.buf >= 0) {
        m.stride = (size_t)e->model->program.buffers[v.buf].width;
        m.p = e->cs->bufs[v.buf] + v.col;
    }
    return m;
}

static const float *vec(const struct exec *e, int w)
{
    return w >= 0 ? (const float *)e->model->weights[w].data : NULL;
}

static int op_rows(const struct exec *e, struct rwkv_view out)
{
    return e->model->program.buffers[out.buf].per_output ? e->chunk->n_out : e->chunk->n_tokens;
}

/* Splits [0, n) into `count` near-equal parts; part `index` is [*b, *e). `align` rounds boundaries. */
static void split(int n, int index, int count, int align, int *b, int *e)
{
    int blocks = (n + align - 1) / align;
    int per = blocks / count, extra = blocks % count;
    int first = index * per + (index < extra ? index : extra);
    int len = per + (index < extra);
    *b = first * align < n ? first * align : n;
    *e = (first + len) * align < n ? (first + len) * align : n;
}

static void run_matmul(void *ctx, int index, int count)
{
    const struct exec *e = ctx;
    const struct rwkv_op *op = e->op;
    const struct rwkv_weight *w = &e->model->weights[op->w[0]];
    int rows = (int)rwkv_weight_rows(w), b, en;
    split(rows, index, count, 4, &b, &en);
    if (b >= en)
        return;
    float *scratch = e->cs->scratch + (size_t)index * e->cs->scratch_per_thread;
    cpu_matmul_rows(w, view(e, op->in[0]), op_rows(e, op->out), view(e, op->out), b, en, vec(e, op->w[1]), op->act,
                    op->accumulate, scratch);
}

/* Row-parallel elementwise ops. */
static void run_rows(void *ctx, int index, int count)
{
    const struct exec *e = ctx;
    const struct rwkv_op *op = e->op;
    int T = op_rows(e, op->out), b, en;
    split(T, index, count, 1, &b, &en);
    struct cpu_mat out = view(e, op->out), x = view(e, op->in[0]), y = view(e, op->in[1]), z = view(e, op->in[2]);
    int n = op->out.width;
    for (int t = b; t < en; t++) {
        float *o = out.p + (size_t)t * out.stride;
        const float *xr = x.p ? x.p + (size_t)t * x.stride : NULL;
        const float *yr = y.p ? y.p + (size_t)t * y.stride : NULL;
        switch (op->kind) {
        case RWKV_OP_EMBED: {
            const struct rwkv_weight *emb = &e->model->weights[op->w[0]];
            cpu_row_to_f32(emb, e->chunk->tokens[t], o);
            break;
        }
        case RWKV_OP_LAYERNORM: cpu_layernorm_row(xr, o, n, vec(e, op->w[0]), vec(e, op->w[1]), op->eps); break;
        case RWKV_OP_LERP: {
            const float *m = vec(e, op->w[0]);
            const float *d = z.p ? z.p + (size_t)t * z.stride : NULL;
            for (int i = 0; i < n; i++) {
                float mix = (m ? m[i] : 0.0f) + (d ? d[i] : 0.0f);
                o[i] = xr[i] + (yr[i] - xr[i]) * mix;
            }
            break;
        }
        case RWKV_OP_MULADD:
            for (int i = 0; i < n; i++)
                o[i] += xr[i] * yr[i];
            break;
        case RWKV_OP_COPY: memcpy(o, xr, (size_t)n * sizeof(float)); break;
        case RWKV_OP_GATHER:
            memcpy(o, x.p + (size_t)e->chunk->out_rows[t] * x.stride, (size_t)n * sizeof(float));
            break;
        default: break;
        }
    }
}

static void run_shift(const struct exec *e)
{
    const struct rwkv_op *op = e->op;
    struct cpu_mat in = view(e, op->in[0]), out = view(e, op->out);
    size_t n = (size_t)op->out.width * sizeof(float);
    size_t sf = e->model->program.state_floats;
    for (int s = 0; s < e->chunk->n_seg; s++) {
        int start = e->chunk->seg_start[s], len = e->chunk->seg_len[s];
        float *st = e->cs->state + (size_t)e->chunk->seg_slot[s] * sf + op->state_off;
        memcpy(out.p + (size_t)start * out.stride, st, n);
        for (int t = start + 1; t < start + len; t++)
            memcpy(out.p + (size_t)t * out.stride, in.p + (size_t)(t - 1) * in.stride, n);
        memcpy(st, in.p + (size_t)(start + len - 1) * in.stride, n);
    }
}

/* WKV: parallel over (segment, head) pairs; each pair runs its tokens in order. */
static void run_wkv(void *ctx, int index, int count)
{
    const struct exec *e = ctx;
    const struct rwkv_op *op = e->op;
    int H = op->kind == RWKV_OP_WKV4 ? 1 : op->heads, N = op->head_size;
    int jobs = e->chunk->n_seg * H, b, en;
    split(jobs, index, count, 1, &b, &en);
    size_t sf = e->model->program.state_floats;
    for (int j = b; j < en; j++) {
        int s = j / H, h = j % H;
        int start = e->chunk->seg_start[s];
        float *state = e->cs->state + (size_t)e->chunk->seg_slot[s] * sf + op->state_off;
        struct cpu_wkv_io io;
        struct cpu_mat *ports[] = {&io.r, &io.k, &io.v, &io.w, &io.a, &io.g};
        /* map the op's inputs onto the io ports for this kind */
        int map4[] = {2, 0, 1, -1, -1, -1};  /* r <- in2, k <- in0, v <- in1 */
        int map5[] = {0, 1, 2, 3, -1, 4};    /* r, k, v, w(opt), -, g(opt) */
        int map7[] = {0, 2, 3, 1, 4, 5};     /* r <- in0, k <- in2, v <- in3, w <- in1, a <- in4, g <- in5 */
        const int *map = op->kind == RWKV_OP_WKV4 ? map4 : op->kind == RWKV_OP_WKV5 ? map5 : map7;
        for (int p = 0; p < 6; p++) {
            *ports[p] = map[p] >= 0 ? view(e, op->in[map[p]]) : (struct cpu_mat){NULL, 0};
            if (ports[p]->p)
                ports[p]->p += (size_t)start * ports[p]->stride + (size_t)h * N;
        }
        io.y = view(e, op->out);
        io.y.p += (size_t)start * io.y.stride + (size_t)h * N;
        io.len = e->chunk->seg_len[s];
        size_t hN = (size_t)h * N;
        switch (op->kind) {
        case RWKV_OP_WKV4: cpu_wkv4_seg(&io, N, vec(e, op->w[0]), vec(e, op->w[1]), state); break;
        case RWKV_OP_WKV5:
            cpu_wkv5_head(&io, N, op->w[0] >= 0 ? vec(e, op->w[0]) + hN : NULL, vec(e, op->w[1]) + hN,
                          vec(e, op->w[2]) + hN, vec(e, op->w[3]) + hN, op->eps, state + hN * N);
            break;
        case RWKV_OP_WKV7:
            cpu_wkv7_head(&io, N, vec(e, op->w[0]) + hN, vec(e, op->w[1]) + hN, vec(e, op->w[2]) + hN,
                          vec(e, op->w[3]) + hN, vec(e, op->w[4]) + hN, op->eps, state + hN * N);
            break;
        default: break;
        }
    }
}

/* Calls the state's hooks that match this HOOK op; returns 0, or non-zero when one asks to stop. */
static int run_hooks(const struct exec *e)
{
    const struct rwkv_op *op = e->op;
    struct cpu_mat m = view(e, op->in[0]);
    int per_output = e->model->program.buffers[op->in[0].buf].per_output;
    return rwkv_hooks_call(e->s, op, m.p, (size_t)op_rows(e, op->in[0]), (size_t)op->in[0].width, m.stride,
                           per_output ? e->chunk->out_slot : e->chunk->token_slot);
}

static void copy_logits(const struct exec *e)
{
    const struct rwkv_program *p = &e->model->program;
    int V = p->buffers[p->logits_buf].width;
    for (int r = 0; r < e->chunk->n_out; r++) {
        const float *src = e->cs->bufs[p->logits_buf] + (size_t)r * V;
        if (e->chunk->out_softmax && e->chunk->out_softmax[r])
            rwkv_softmax(src, e->rows[r], (size_t)V);
        else
            memcpy(e->rows[r], src, (size_t)V * sizeof(float));
    }
}

static rwkv_status cpu_run(struct rwkv_state *s, const struct rwkv_chunk *chunk, float *const *rows,
                           struct rwkv_error *err)
{
    const struct rwkv_model *m = s->model;
    struct cpu_device *cd = m->device->priv;
    struct exec e = {m, s, s->priv, chunk, NULL, rows};
    const struct rwkv_program *p = &m->program;
    for (int i = 0; i < p->n_ops; i++) {
        const struct rwkv_op *op = &p->ops[i];
        e.op = op;
        if (op->out.buf >= 0 && p->buffers[op->out.buf].per_output && chunk->n_out == 0)
            continue; /* no logits requested: skip the head */
        switch (op->kind) {
        case RWKV_OP_MATMUL: rwkv_pool_run(cd->pool, run_matmul, &e); break;
        case RWKV_OP_SHIFT: run_shift(&e); break;
        case RWKV_OP_WKV4:
        case RWKV_OP_WKV5:
        case RWKV_OP_WKV7: rwkv_pool_run(cd->pool, run_wkv, &e); break;
        case RWKV_OP_HOOK:
            if (s->n_hooks && run_hooks(&e))
                return rwkv_fail(err, RWKV_ERR_ARG, "run stopped by a hook at %s (layer %d)", op->hook, op->layer);
            break;
        default:
            if ((size_t)op_rows(&e, op->out) * (size_t)op->out.width >= 16384)
                rwkv_pool_run(cd->pool, run_rows, &e);
            else
                run_rows(&e, 0, 1);
            break;
        }
    }
    copy_logits(&e);
    return RWKV_OK;
}

struct copy_job {
    uint8_t *dst;
    const uint8_t *src;
    size_t n;
};

static void copy_part(void *ctx, int index, int count)
{
    const struct copy_job *j = ctx;
    size_t part = (j->n / (size_t)count + 63) & ~(size_t)63;
    size_t start = part * (size_t)index;
    if (start < j->n)
        memcpy(j->dst + start, j->src + start, start + part > j->n ? j->n - start : part);
}

/* memcpy with the device's threads, best of 5. */
static rwkv_status cpu_copy_bandwidth(struct rwkv_device *dev, size_t bytes, double *gbps, struct rwkv_error *err)
{
    struct cpu_device *cd = dev->priv;
    struct copy_job j = {malloc(bytes), malloc(bytes), bytes};
    if (!j.dst || !j.src) {
        free(j.dst);
        free((void *)j.src);
        return rwkv_fail(err, RWKV_ERR_NOMEM, "out of memory for a %zu-byte copy", bytes);
    }
    memset(j.dst, 1, bytes); /* fault the pages in before timing */
    memset((void *)j.src, 2, bytes);
    double best = 0;
    for (int i = 0; i < 5; i++) {
        double t0 = rwkv_time_seconds();
        rwkv_pool_run(cd->pool, copy_part, &j);
        double t = rwkv_time_seconds() - t0;
        if (t > 0 && 2.0 * (double)bytes / t > best)
            best = 2.0 * (double)bytes / t;
    }
    free(j.dst);
    free((void *)j.src);
    *gbps = best / 1e9;
    return RWKV_OK;
}

const struct rwkv_backend_ops rwkv_cpu_backend = {
    .name = "cpu",
    .supports_hooks = 1,
    .softmax = 1,
    .device_open = cpu_device_open,
    .device_free = cpu_device_free,
    .model_init = cpu_model_init,
    .model_free = cpu_model_free,
    .state_init = cpu_state_init,
    .state_free = cpu_state_free,
    .state_read = cpu_state_read,
    .state_write = cpu_state_write,
    .state_copy = cpu_state_copy,
    .run = cpu_run,
    .copy_bandwidth = cpu_copy_bandwidth,
};
