/* The Vulkan backend: weights on the device, state slots and runtime buffers, descriptor sets, and
 * state read/write/copy. Running a chunk is in vk_exec.c.
 *
 * Weights: every weight a program op references is uploaded once. Matrices (MATMUL/EMBED w0) keep
 * F16 or F32; BF16 becomes F16 when every value is exactly representable, else F32, so the numbers
 * are those of the CPU backend. Matrices are split into parts of whole rows that each fit one
 * descriptor (lim.split_bytes); vectors are F32, one span each.
 *
 * State: the program addresses one slot's state by float offsets (state_off). The device stores it
 * by region instead: each range of the slot that an op uses (a layer's shift or WKV state) is one
 * array over all slots, [num_batch][floats], so that one descriptor covers that range of every slot.
 *
 * Runtime buffers are [token_chunk_size][width] floats, per-output ones [out_tile][width]: when all
 * requested logits rows do not fit one descriptor, the per-output ops run in tiles of rows. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/vulkan/vk_internal.h"
#include "core/error.h"
#include "core/platform.h"

static struct vk_dev *dev_of(const struct rwkv_model *m)
{
    return m->device->priv;
}

/* ---- weights ---- */

enum role { ROLE_NONE, ROLE_VECTOR, ROLE_MATRIX };

static int is_matrix_slot(const struct rwkv_op *op, int i)
{
    return i == 0 && (op->kind == RWKV_OP_MATMUL || op->kind == RWKV_OP_EMBED);
}

static rwkv_status weight_roles(const struct rwkv_model *m, unsigned char *role, struct rwkv_error *err)
{
    for (int o = 0; o < m->program.n_ops; o++) {
        const struct rwkv_op *op = &m->program.ops[o];
        for (int i = 0; i < RWKV_OP_MAX_W; i++) {
            int w = op->w[i];
            if (w < 0)
                continue;
            unsigned char r = is_matrix_slot(op, i) ? ROLE_MATRIX : ROLE_VECTOR;
            if (role[w] != ROLE_NONE && role[w] != r)
                return rwkv_fail(err, RWKV_ERR_UNSUPPORTED, "vulkan: weight '%s' is used both as a matrix and as a "
                                 "vector", m->weights[w].name);
            if (r == ROLE_VECTOR && m->weights[w].dtype != RWKV_DTYPE_F32)
                return rwkv_fail(err, RWKV_ERR_MODEL, "internal: vector '%s' is not F32", m->weights[w].name);
            role[w] = r;
        }
    }
    return RWKV_OK;
}

static size_t numel(const struct rwkv_weight *w)
{
    return w->nbytes / rwkv_dtype_size(w->dtype);
}

/* BF16 goes to F16 when that is exact for every value (true of most checkpoints' bf16 weights). */
static enum rwkv_dtype device_dtype(const struct rwkv_weight *w)
{
    if (w->dtype != RWKV_DTYPE_BF16)
        return w->dtype;
    const uint16_t *p = w->data;
    for (size_t i = 0, n = numel(w); i < n; i++) {
        uint16_t b;
        memcpy(&b, p + i, 2);
        float f = rwkv_bf16_to_f32(b);
        if (rwkv_f16_to_f32(rwkv_f32_to_f16(f)) != f)
            return RWKV_DTYPE_F32;
    }
    return RWKV_DTYPE_F16;
}

static rwkv_status plan_weight(struct vk_dev *d, struct vk_model *vm, const struct rwkv_weight *w, int idx,
                               enum role role, struct rwkv_error *err)
{
    struct vk_tensor *t = &vm->w[idx];
    int matrix = role == ROLE_MATRIX;
    t->dtype = matrix ? device_dtype(w) : RWKV_DTYPE_F32;
    uint32_t rows = matrix ? (uint32_t)rwkv_weight_rows(w) : 1;
    t->cols = matrix ? (uint32_t)rwkv_weight_cols(w) : (uint32_t)numel(w);
    VkDeviceSize row_bytes = (VkDeviceSize)t->cols * rwkv_dtype_size(t->dtype);
    uint32_t per_part = matrix ? (uint32_t)(d->lim.split_bytes / (row_bytes ? row_bytes : 1)) : 1;
    if (per_part == 0)
        return rwkv_fail(err, RWKV_ERR_UNSUPPORTED, "vulkan: a row of '%s' (%llu bytes) exceeds the %llu bytes one "
                         "buffer may hold", w->name, (unsigned long long)row_bytes,
                         (unsigned long long)d->lim.split_bytes);
    t->n_parts = (int)((rows + per_part - 1) / per_part);
    t->parts = calloc((size_t)t->n_parts, sizeof *t->parts);
    if (!t->parts)
        return rwkv_fail(err, RWKV_ERR_NOMEM, "out of memory");
    for (int p = 0; p < t->n_parts; p++) {
        struct vk_part *part = &t->parts[p];
        part->row0 = (uint32_t)p * per_part;
        part->nrows = rows - part->row0 < per_part ? rows - part->row0 : per_part;
        rwkv_status st = vk_pool_reserve(&vm->pool, part->nrows * row_bytes, &part->span, w->name, err);
        if (st)
            return st;
    }
    return RWKV_OK;
}

/* ---- LAYERNORM + SHIFT + LERPs in one dispatch (normmix.comp) ---- */

static int same_view(struct rwkv_view a, struct rwkv_view b)
{
    return a.buf == b.buf && a.col == b.col && a.width == b.width;
}

/* A view covering a whole buffer of width C. */
static int whole(const struct rwkv_program *p, struct rwkv_view v, int C)
{
    return v.buf >= 0 && v.col == 0 && v.width == C && p->buffers[v.buf].width == C;
}

/* The next op after `o` that is not a HOOK (groups span hook points: vk_exec.c runs hooks between
 * dispatches), or -1. */
static int next_op(const struct rwkv_program *p, int o)
{
    while (++o < p->n_ops && p->ops[o].kind == RWKV_OP_HOOK)
        ;
    return o < p->n_ops ? o : -1;
}

/* Whether LERP `l` fits a group reading xx and sx and writing the buffers in `written` (a bit mask). */
static int mix_lerp(const struct rwkv_program *p, const struct rwkv_op *l, struct rwkv_view xx, struct rwkv_view sx,
                    uint64_t written, int *swapped)
{
    int C = xx.width;
    if (l->kind != RWKV_OP_LERP || l->in[2].buf >= 0 || !whole(p, l->out, C) || (written >> l->out.buf) & 1)
        return 0;
    *swapped = same_view(l->in[0], sx) && same_view(l->in[1], xx);
    return *swapped || (same_view(l->in[0], xx) && same_view(l->in[1], sx));
}

/* For LAYERNORM op `o`: absorbs the SHIFT of its output and the LERPs between the two that follow
 * (hooks aside), where normmix.comp computes them alike; sets the op's group and flags. */
static void plan_group(const struct rwkv_program *p, struct vk_model *vm, int o)
{
    const struct rwkv_op *ln = &p->ops[o];
    struct vk_op_kernel *ok = &vm->ok[o];
    int C = ln->out.width, s = next_op(p, o);
    /* the shift reads the row before: LN must not overwrite x, and sx must be a buffer of its own */
    if (s < 0 || p->ops[s].kind != RWKV_OP_SHIFT || !same_view(p->ops[s].in[0], ln->out) ||
        ln->in[0].buf == ln->out.buf || !whole(p, p->ops[s].out, C) || p->ops[s].out.buf == ln->in[0].buf ||
        p->ops[s].out.buf == ln->out.buf)
        return;
    struct rwkv_view xx = ln->out, sx = p->ops[s].out;
    ok->shift_op = ok->group_end = s;
    ok->mix_flags = 1u << 24;
    uint64_t written = (uint64_t)1 << ln->in[0].buf | (uint64_t)1 << xx.buf | (uint64_t)1 << sx.buf;
    int n = 0, swapped;
    for (int l = next_op(p, s); l >= 0 && n < VK_MIX_MAX && mix_lerp(p, &p->ops[l], xx, sx, written, &swapped);
         l = next_op(p, l)) {
        ok->lerp_op[n] = ok->group_end = l;
        ok->mix_flags |= 1u << n | (uint32_t)swapped << (8 + n);
        written |= (uint64_t)1 << p->ops[l].out.buf;
        n++;
    }
}

/* For MATMUL op `o`: absorbs a LERP next that takes the output as its dyn input (v7's v = lerp(v,
 * v_first, v_gate)), done in the epilogue per element (matmul_out.glsl). No mix vector; the LERP may
 * not write what the matmul reads nor overwrite its output. */
static void plan_lerp_out(const struct rwkv_program *p, struct vk_model *vm, int o)
{
    const struct rwkv_op *mm = &p->ops[o];
    int l = next_op(p, o);
    if (l < 0 || mm->accumulate)
        return;
    const struct rwkv_op *lp = &p->ops[l];
    if (lp->kind != RWKV_OP_LERP || lp->w[0] >= 0 || !same_view(lp->in[2], mm->out) || lp->in[0].buf < 0 ||
        lp->in[1].buf < 0 || lp->out.width != mm->out.width || lp->out.buf == mm->in[0].buf ||
        lp->out.buf == mm->out.buf || lp->in[0].buf == mm->out.buf || lp->in[1].buf == mm->out.buf)
        return;
    vm->ok[o].lerp_op[0] = vm->ok[o].group_end = l;
}

/* ---- WKV7 of one token with the LoRA up-projections before it (wkv7_one.comp, LORA) ---- */

/* The MATMUL among ops [from, to) writing exactly view `v` with activation `act`, with or without a
 * bias, whose input is a whole buffer of a width that is a multiple of 8 and whose matrix is one part
 * of `dt`; -1 if none. */
static int lora_up(const struct rwkv_model *m, const struct vk_model *vm, int from, int to, struct rwkv_view v,
                   enum rwkv_act act, int bias, enum rwkv_dtype dt)
{
    const struct rwkv_program *p = &m->program;
    for (int o = from; o < to; o++) {
        const struct rwkv_op *mm = &p->ops[o];
        if (mm->kind != RWKV_OP_MATMUL || !same_view(mm->out, v))
            continue;
        int D = mm->in[0].width;
        const struct vk_tensor *t = &vm->w[mm->w[0]];
        if (mm->act != act || (mm->w[1] >= 0) != bias || mm->accumulate || !whole(p, mm->in[0], D) || D % 8 ||
            D > 1024 || t->n_parts != 1 || t->dtype != dt || t->cols != (uint32_t)D || vm->ok[o].group_end < 0)
            return -1;
        return o;
    }
    return -1;
}

/* Whether any op in [from, to) other than `skip` reads buffer `buf` (hooks do not run on this backend). */
static int read_between(const struct rwkv_program *p, int from, int to, int buf, int skip)
{
    for (int o = from; o < to; o++)
        for (int i = 0; i < RWKV_OP_MAX_IN && o != skip && p->ops[o].kind != RWKV_OP_HOOK; i++)
            if (p->ops[o].in[i].buf == buf)
                return 1;
    return 0;
}

/* For WKV7 op `o`: finds v7's w2, a2, g2 and v2 (with its absorbed v LERP) projections of the layer,
 * whose outputs nothing but WKV7 reads. Sets ok->lora_ops; returns whether all were found. */
static int plan_wkv7_lora(const struct rwkv_model *m, struct vk_model *vm, int o, enum rwkv_dtype *dt)
{
    const struct rwkv_program *p = &m->program;
    const struct rwkv_op *op = &p->ops[o];
    struct vk_op_kernel *ok = &vm->ok[o];
    int from = o;
    while (from > 0 && p->ops[from - 1].layer == op->layer)
        from--;
    int to = o + 1;
    while (to < p->n_ops && p->ops[to].layer == op->layer)
        to++;
    int w2 = -1;
    for (int i = from; i < o && w2 < 0; i++) /* the decay projection names the weights' type */
        if (p->ops[i].kind == RWKV_OP_MATMUL && same_view(p->ops[i].out, op->in[1]))
            w2 = i;
    if (w2 < 0)
        return 0;
    *dt = vm->w[p->ops[w2].w[0]].dtype;
    int C = op->out.width;
    int ups[3] = {lora_up(m, vm, from, o, op->in[1], RWKV_ACT_V7_DECAY, 1, *dt),
                  lora_up(m, vm, from, o, op->in[4], RWKV_ACT_SIGMOID, 1, *dt),
                  lora_up(m, vm, from, o, op->in[5], RWKV_ACT_NONE, 0, *dt)};
    for (int j = 0; j < 3; j++)
        if (ups[j] < 0 || !whole(p, p->ops[ups[j]].out, C) || read_between(p, from, to, p->ops[ups[j]].out.buf, o))
            return 0;
    /* v: the projection whose absorbed LERP makes v = v + (v_first - v) * gate in place, if any */
    int v2 = -1;
    for (int i = from; i < o; i++) {
        int l = vm->ok[i].lerp_op[0];
        if (p->ops[i].kind == RWKV_OP_MATMUL && l >= 0 && same_view(p->ops[l].out, op->in[3]))
            v2 = i;
    }
    if (v2 >= 0) {
        const struct rwkv_op *l = &p->ops[vm->ok[v2].lerp_op[0]];
        if (lora_up(m, vm, from, o, p->ops[v2].out, RWKV_ACT_SIGMOID, 1, *dt) != v2 ||
            !same_view(l->in[0], op->in[3]) || !whole(p, l->in[1], C) || !whole(p, op->in[3], C) ||
            read_between(p, from, to, p->ops[v2].out.buf, vm->ok[v2].lerp_op[0]) ||
            read_between(p, vm->ok[v2].lerp_op[0] + 1, to, op->in[3].buf, o))
            return 0;
    } else { /* no v LoRA (layer 0): then no LERP may write v */
        for (int i = from; i < o; i++)
            if (p->ops[i].kind == RWKV_OP_LERP && p->ops[i].out.buf == op->in[3].buf)
                return 0;
    }
    memcpy(ok->lora_ops, ups, sizeof ups);
    ok->lora_ops[3] = v2;
    return 1;
}

/* Groups (an absorbed op gets group_end -1), and a parameter span of each LAYERNORM (upload_params). */
static rwkv_status plan_groups(const struct rwkv_model *m, struct vk_model *vm, struct rwkv_error *err)
{
    const struct rwkv_program *p = &m->program;
    for (int o = 0; o < p->n_ops; o++) {
        struct vk_op_kernel *ok = &vm->ok[o];
        ok->group_end = o;
        ok->shift_op = -1;
        ok->absorbed_by = -1;
        ok->mix_src = -1;
        for (int j = 0; j < VK_MIX_MAX; j++)
            ok->lerp_op[j] = -1;
    }
    for (int o = 0; o < p->n_ops; o++) {
        if (p->ops[o].kind == RWKV_OP_MATMUL) {
            plan_lerp_out(p, vm, o);
            for (int a = o + 1; a <= vm->ok[o].group_end; a++)
                vm->ok[a].group_end = -1;
            o = vm->ok[o].group_end;
            continue;
        }
        if (p->ops[o].kind != RWKV_OP_LAYERNORM)
            continue;
        plan_group(p, vm, o);
        size_t bytes = (2 + VK_MIX_MAX) * (size_t)p->ops[o].out.width * sizeof(float);
        rwkv_status st = vk_pool_reserve(&vm->pool, bytes, &vm->ok[o].params, "layernorm parameters", err);
        if (st)
            return st;
        for (int a = o + 1; a <= vm->ok[o].group_end; a++)
            vm->ok[a].group_end = -1;
        o = vm->ok[o].group_end;
    }
    return RWKV_OK;
}

/* Whether MATMUL op `o` reads the output of a ReLU^2 MATMUL (the FFN value: about half its inputs zero
 * for random weights, most for trained ones) and gemv_sparse.comp can take it: one F16 part, N % 8 == 0,
 * rows per token. */
static int sparse_input(const struct rwkv_model *m, const struct vk_model *vm, int o)
{
    const struct rwkv_program *p = &m->program;
    const struct rwkv_op *op = &p->ops[o];
    if (op->kind != RWKV_OP_MATMUL || op->w[0] < 0 || p->buffers[op->in[0].buf].per_output)
        return 0;
    const struct vk_tensor *t = &vm->w[op->w[0]];
    if (t->dtype != RWKV_DTYPE_F16 || t->n_parts != 1 || t->parts[0].nrows % 8 != 0)
        return 0;
    for (int a = o - 1; a >= 0; a--) /* the op that last wrote the input */
        if (p->ops[a].kind != RWKV_OP_HOOK && p->ops[a].out.buf == op->in[0].buf)
            return p->ops[a].kind == RWKV_OP_MATMUL && p->ops[a].act == RWKV_ACT_RELU_SQ &&
                   same_view(p->ops[a].out, op->in[0]);
    return 0;
}

/* With RWKV_VK_SPARSE_FFN=1: room for W^T of each MATMUL that sparse_input() admits. */
static rwkv_status plan_sparse(const struct vk_dev *d, const struct rwkv_model *m, struct vk_model *vm,
                               struct rwkv_error *err)
{
    for (int o = 0; d->sparse_ffn && o < m->program.n_ops; o++) {
        if (!sparse_input(m, vm, o))
            continue;
        const struct vk_tensor *t = &vm->w[m->program.ops[o].w[0]];
        rwkv_status st = vk_pool_reserve(&vm->pool, (size_t)t->parts[0].nrows * t->cols * 2, &vm->ok[o].wt,
                                         "a transposed FFN value matrix", err);
        if (st)
            return st;
    }
    return RWKV_OK;
}

/* Copies weights into device buffers through one staging buffer, converting on the way. */
struct uploader {
    struct vk_dev *d;
    struct vk_pool staging;
    VkDeviceSize cap, used;
    struct vk_cmd cmd;
    int open;
};

static rwkv_status up_flush(struct uploader *u, struct rwkv_error *err)
{
    rwkv_status st = RWKV_OK;
    if (u->open)
        st = vk_cmd_submit(u->d, &u->cmd, err);
    u->open = 0;
    u->used = 0;
    return st;
}

static void convert(const struct rwkv_weight *w, enum rwkv_dtype to, size_t e0, size_t n, void *dst)
{
    size_t es = rwkv_dtype_size(w->dtype);
    const uint8_t *src = (const uint8_t *)w->data + e0 * es;
    if (w->dtype == to) {
        memcpy(dst, src, n * es);
        return;
    }
    for (size_t i = 0; i < n; i++) { /* from BF16: the only conversion device_dtype() asks for */
        uint16_t b;
        memcpy(&b, src + 2 * i, 2);
        float f = rwkv_bf16_to_f32(b);
        if (to == RWKV_DTYPE_F16)
            ((uint16_t *)dst)[i] = rwkv_f32_to_f16(f);
        else
            ((float *)dst)[i] = f;
    }
}

static rwkv_status up_part(struct uploader *u, const struct rwkv_weight *w, const struct vk_tensor *t,
                           const struct vk_part *part, VkBuffer dst, struct rwkv_error *err)
{
    size_t es = rwkv_dtype_size(t->dtype);
    size_t e = (size_t)part->row0 * t->cols, n = (size_t)part->nrows * t->cols;
    VkDeviceSize dst_off = part->span.offset;
    while (n > 0) {
        if (u->cap - u->used < es) {
            rwkv_status st = up_flush(u, err);
            if (st)
                return st;
        }
        if (!u->open) {
            rwkv_status st = vk_cmd_begin(u->d, &u->cmd, err);
            if (st)
                return st;
            u->open = 1;
        }
        size_t k = (size_t)((u->cap - u->used) / es);
        k = k < n ? k : n;
        convert(w, t->dtype, e, k, (uint8_t *)u->staging.blocks[0].mapped + u->used);
        VkBufferCopy c = {u->used, dst_off, k * es};
        vkCmdCopyBuffer(u->cmd.cb, u->staging.blocks[0].buffer, dst, 1, &c);
        u->used += (k * es + 3) & ~(VkDeviceSize)3;
        e += k;
        n -= k;
        dst_off += k * es;
    }
    return RWKV_OK;
}

/* The NORMMIX parameters of LAYERNORM op `o`: ln weight, ln bias, each absorbed LERP's mix (or zeros). */
static rwkv_status upload_params(struct uploader *u, const struct rwkv_model *m, const struct vk_model *vm, int o,
                                 struct rwkv_error *err)
{
    const struct rwkv_op *ln = &m->program.ops[o];
    const struct vk_op_kernel *ok = &vm->ok[o];
    size_t C = (size_t)ln->out.width;
    float *h = calloc((2 + VK_MIX_MAX) * C, sizeof *h);
    if (!h)
        return rwkv_fail(err, RWKV_ERR_NOMEM, "out of memory");
    int src[2 + VK_MIX_MAX] = {ln->w[0], ln->w[1]};
    for (int j = 0; j < VK_MIX_MAX; j++)
        src[2 + j] = ok->lerp_op[j] >= 0 ? m->program.ops[ok->lerp_op[j]].w[0] : -1;
    for (int i = 0; i < 2 + VK_MIX_MAX; i++) /* vectors are F32 (weight_roles) */
        if (src[i] >= 0)
            memcpy(h + i * C, m->weights[src[i]].data, C * sizeof *h);
    struct rwkv_weight w = {.dtype = RWKV_DTYPE_F32, .data = h, .nbytes = (2 + VK_MIX_MAX) * C * sizeof *h};
    struct vk_part part = {ok->params, 0, 1};
    struct vk_tensor t = {RWKV_DTYPE_F32, (uint32_t)((2 + VK_MIX_MAX) * C), 1, &part};
    rwkv_status st = up_part(u, &w, &t, &part, vm->pool.blocks[ok->params.block].buffer, err);
    if (!st) /* the staging buffer holds h's copy only once flushed */
        st = up_flush(u, err);
    free(h);
    return st;
}

/* W^T [K][N] F16 of MATMUL op `o` into its `wt` span (sparse_input), transposed on the host in blocks. */
static rwkv_status upload_transposed(struct uploader *u, const struct rwkv_model *m, const struct vk_model *vm, int o,
                                     struct rwkv_error *err)
{
    const struct rwkv_weight *w = &m->weights[m->program.ops[o].w[0]];
    const struct vk_tensor *t = &vm->w[m->program.ops[o].w[0]];
    enum { B = 64 }; /* rows of W per block: W^T written 128 contiguous bytes at a time */
    size_t N = t->parts[0].nrows, K = t->cols;
    uint16_t *tr = malloc(N * K * sizeof *tr), *rows = malloc(B * K * sizeof *rows);
    if (!tr || !rows) {
        free(tr);
        free(rows);
        return rwkv_fail(err, RWKV_ERR_NOMEM, "out of memory transposing a %zu x %zu matrix", N, K);
    }
    for (size_t n0 = 0; n0 < N; n0 += B) { /* rows n0.. of W (converted to F16) are columns of W^T */
        size_t nb = N - n0 < B ? N - n0 : B;
        convert(w, RWKV_DTYPE_F16, n0 * K, nb * K, rows);
        for (size_t k = 0; k < K; k++)
            for (size_t i = 0; i < nb; i++)
                tr[k * N + n0 + i] = rows[i * K + k];
    }
    free(rows);
    struct rwkv_weight tw = {.dtype = RWKV_DTYPE_F16, .data = tr, .nbytes = N * K * sizeof *tr};
    struct vk_part part = {vm->ok[o].wt, 0, (uint32_t)K};
    struct vk_tensor tt = {RWKV_DTYPE_F16, (uint32_t)N, 1, &part};
    rwkv_status st = up_part(u, &tw, &tt, &part, vm->pool.blocks[part.span.block].buffer, err);
    if (!st) /* the staging buffer holds tr's copy only once flushed */
        st = up_flush(u, err);
    free(tr);
    return st;
}

static rwkv_status upload(struct vk_dev *d, const struct rwkv_model *m, struct vk_model *vm, struct rwkv_error *err)
{
    VkDeviceSize total = 0;
    for (int b = 0; b < vm->pool.n_blocks; b++)
        total += vm->pool.blocks[b].size;
    struct uploader u = {.d = d};
    u.cap = total < ((VkDeviceSize)64 << 20) ? total : ((VkDeviceSize)64 << 20);
    rwkv_status st = vk_staging_new(d, &u.staging, u.cap, err);
    if (!st)
        st = vk_cmd_init(d, &u.cmd, err);
    for (int i = 0; i < m->n_weights && !st; i++) {
        const struct vk_tensor *t = &vm->w[i];
        for (int p = 0; p < t->n_parts && !st; p++)
            st = up_part(&u, &m->weights[i], t, &t->parts[p], vm->pool.blocks[t->parts[p].span.block].buffer, err);
    }
    for (int o = 0; o < m->program.n_ops && !st; o++)
        if (m->program.ops[o].kind == RWKV_OP_LAYERNORM)
            st = upload_params(&u, m, vm, o, err);
    for (int o = 0; o < m->program.n_ops && !st; o++)
        if (vm->ok[o].wt.size)
            st = upload_transposed(&u, m, vm, o, err);
    if (!st)
        st = up_flush(&u, err);
    vk_cmd_free(d, &u.cmd);
    vk_pool_free(d, &u.staging);
    return st;
}

/* ---- kernels of the ops ---- */

static int kernel_of(enum rwkv_op_kind k)
{
    switch (k) {
    case RWKV_OP_EMBED: return VK_K_EMBED;
    case RWKV_OP_LAYERNORM: return VK_K_NORMMIX;
    case RWKV_OP_SHIFT: return VK_K_SHIFT;
    case RWKV_OP_LERP:
    case RWKV_OP_MULADD:
    case RWKV_OP_COPY:
    case RWKV_OP_GATHER: return VK_K_ROWS;
    case RWKV_OP_MATMUL: return VK_K_MATMUL;
    case RWKV_OP_WKV4: return VK_K_WKV4;
    case RWKV_OP_WKV5: return VK_K_WKV5;
    case RWKV_OP_WKV7: return VK_K_WKV7;
    default: return -1;
    }
}

static int rows_mode(enum rwkv_op_kind k)
{
    return k == RWKV_OP_LERP ? VK_ROWS_LERP : k == RWKV_OP_MULADD ? VK_ROWS_MULADD
         : k == RWKV_OP_COPY ? VK_ROWS_COPY : VK_ROWS_GATHER;
}

/* WKV7's tokens per block for head size N: the most of 16, 8, 4 whose shared memory fits (wkv7.comp:
 * 8 floats per token and channel, one per token, and the reductions' 5 per channel); 0 if none. */
static uint32_t wkv7_block(const struct vk_dev *d, uint32_t N)
{
    for (uint32_t tb = 16; tb >= 4; tb /= 2)
        if ((8 * tb * N + tb + 5 * N) * sizeof(float) <= d->lim.max_shared)
            return tb;
    return 0;
}

/* Checks what the kernels assume about an op (they read the whole input while writing the output). */
static rwkv_status check_op(const struct vk_dev *d, const struct rwkv_op *op, struct rwkv_error *err)
{
    if ((op->kind == RWKV_OP_MATMUL || op->kind == RWKV_OP_SHIFT || op->kind == RWKV_OP_GATHER) &&
        op->in[0].buf == op->out.buf)
        return rwkv_fail(err, RWKV_ERR_UNSUPPORTED, "vulkan: %s op of layer %d works in place",
                         rwkv_op_name(op->kind), op->layer);
    /* a workgroup per head: N invocations, and shared memory (wkv5.comp: 6 N floats) */
    uint32_t N = (uint32_t)op->head_size;
    if ((op->kind == RWKV_OP_WKV5 || op->kind == RWKV_OP_WKV7) &&
        (N > d->lim.max_wg || 6 * 4 * N > d->lim.max_shared || (op->kind == RWKV_OP_WKV7 && !wkv7_block(d, N))))
        return rwkv_fail(err, RWKV_ERR_UNSUPPORTED, "vulkan: head size %d: this device runs at most %u invocations "
                         "with %u bytes of shared memory in a workgroup", op->head_size, d->lim.max_wg,
                         d->lim.max_shared);
    if (op->kind == RWKV_OP_WKV7 && N % 4 != 0) /* wkv7.comp reads keys four at a time */
        return rwkv_fail(err, RWKV_ERR_UNSUPPORTED, "vulkan: v7 head size %d is not a multiple of 4", op->head_size);
    return RWKV_OK;
}

/* Whether MATMUL op `op` may use the 16-byte-load kernels (GEMV, GEMM_CM): K in blocks of 8, x rows
 * starting on 16-byte boundaries. */
static int mm_aligned(const struct rwkv_model *m, const struct rwkv_op *op)
{
    const struct rwkv_program *p = &m->program;
    return op->in[0].width % 8 == 0 && op->in[0].col % 4 == 0 && p->buffers[op->in[0].buf].width % 4 == 0;
}

/* A pipeline the backend can do without (a faster variant): a driver that refuses it gets one line on
 * stderr and the general kernel; only a lost device or exhausted memory is an error. */
static rwkv_status optional_pipeline(struct vk_dev *d, int kernel, enum rwkv_dtype dt, const uint32_t spec[VK_SPEC],
                                     VkPipeline *out, struct rwkv_error *err)
{
    rwkv_status st = vk_pipeline_get(d, kernel, dt, spec, out, err);
    if (!st || d->lost || st == RWKV_ERR_NOMEM)
        return st;
    fprintf(stderr, "rwkv: vulkan: %s kernel unavailable, using the general one: %s\n", vk_kernel_name(kernel),
            err->message);
    *out = VK_NULL_HANDLE;
    rwkv_error_clear(err);
    return RWKV_OK;
}

/* The variants of a MATMUL op (enum vk_mm); those it does not qualify for stay VK_NULL_HANDLE. */
static rwkv_status mm_pipelines(struct vk_dev *d, const struct rwkv_model *m, const struct rwkv_op *op,
                                enum rwkv_dtype dt, struct vk_op_kernel *ok, struct rwkv_error *err)
{
    int aligned = mm_aligned(m, op);
    for (int v = 0; v < VK_MM_COUNT; v++) {
        uint32_t spec[VK_SPEC] = {0};
        int kernel;
        switch (v) {
        case VK_MM_BASIC:
            kernel = VK_K_MATMUL;
            spec[0] = VK_WG_MATMUL;
            spec[1] = VK_MATMUL_ROWS;
            spec[2] = VK_MATMUL_TOK;
            break;
        case VK_MM_GEMV1:
        case VK_MM_GEMV4: {
            /* a subgroup per row loads K / 8 / subgroup size blocks per lane, 4 per round (gemv.comp's
             * UNROLL); past one round, 2 or 4 subgroups share the row, so that a row is about one round
             * of loads; not for 4096 rows and more, which fill the device anyway (H200: 5-10% faster
             * unsplit). RWKV_VK_GEMV_ROUND=1: every block of a lane in one round (up to 16), K split
             * only beyond: on an H200 2 % faster at 1.5b, 4 % slower at 7.2b and 0.1b. */
            uint32_t K = (uint32_t)op->in[0].width, sg = d->feat.subgroup_size ? d->feat.subgroup_size : 32;
            uint32_t split = 1, K8 = K / 8, max_u = dt == RWKV_DTYPE_F16 && v == VK_MM_GEMV1 ? 16 : 8, unroll;
            if (!d->gemv_round) {
                split = op->out.width >= 4096 || K <= 32 * sg ? 1 : K <= 64 * sg ? 2 : 4;
                unroll = 4;
            } else {
                while (split < VK_GEMV_SUBGROUPS && K8 > max_u * sg * split)
                    split *= 2;
                unroll = (K8 + sg * split - 1) / (sg * split);
                unroll = unroll < 4 ? 4 : unroll > max_u ? max_u : unroll;
            }
            kernel = VK_K_GEMV;
            spec[0] = VK_GEMV_SUBGROUPS * sg < d->lim.max_wg ? VK_GEMV_SUBGROUPS * sg : d->lim.max_wg;
            spec[1] = ok->gemv_rows = VK_GEMV_SUBGROUPS / split;
            spec[2] = v == VK_MM_GEMV1 ? 1 : 4;
            spec[3] = unroll;
            break;
        }
        case VK_MM_GEMM:
            kernel = VK_K_GEMM;
            spec[0] = VK_WG_GEMM;
            break;
        default: {
            const struct vk_cm_tile *t = &d->cm_tiles[v - VK_MM_CM_TINY];
            kernel = VK_K_GEMM_CM;
            spec[0] = 32 * t->wm * t->wn;
            spec[1] = t->tm;
            spec[2] = t->tn;
            spec[3] = t->wm;
            spec[4] = t->wn;
            uint32_t split = d->feat.coopmat != VK_COOPMAT_FP16;
            spec[5] = split | (d->feat.coopmat == VK_COOPMAT_FALLBACK) << 1;
            spec[6] = t->tk;
            /* an override too large for the device leaves the variant out */
            if (vk_cm_shared_bytes(t, (int)split) > d->lim.max_shared || 32 * t->wm * t->wn > d->lim.max_wg)
                continue;
            break;
        }
        }
        if (!vk_kernel_available(d, kernel, dt) || ((kernel == VK_K_GEMV || kernel == VK_K_GEMM_CM) && !aligned))
            continue;
        rwkv_status st = vk_pipeline_get(d, kernel, dt, spec, &ok->mm[v], err);
        if (!st && kernel == VK_K_GEMM_CM && v != VK_MM_CM_BIG && d->ksplit != 0) { /* vk_exec.c's ksplit_parts */
            spec[5] |= 8;
            st = optional_pipeline(d, kernel, dt, spec, &ok->mm_split[v], err);
        }
        if (st && kernel == VK_K_GEMM_CM && !d->lost) { /* a driver refusing it: the fp32 tiles remain */
            fprintf(stderr, "rwkv: vulkan: tensor-core kernel unavailable, using fp32 tiles: %s\n", err->message);
            d->feat.coopmat = VK_COOPMAT_OFF;
            ok->mm[VK_MM_CM_TINY] = ok->mm[VK_MM_CM_SMALL] = ok->mm[VK_MM_CM_BIG] = VK_NULL_HANDLE;
            ok->mm_split[VK_MM_CM_TINY] = ok->mm_split[VK_MM_CM_SMALL] = VK_NULL_HANDLE;
            break;
        }
        if (st)
            return st;
    }
    ok->pipeline = ok->mm[VK_MM_BASIC];
    uint32_t spec[VK_SPEC] = {256};
    if (ok->mm[VK_MM_CM_TINY] || ok->mm[VK_MM_CM_SMALL] || ok->mm[VK_MM_CM_BIG])
        return optional_pipeline(d, VK_K_KSUM, RWKV_DTYPE_F32, spec, &ok->ksum, err);
    return RWKV_OK;
}

/* WKV7's split over state rows (wkv7.comp MODE 1, then MODE 2; `plain` is the MODE 0 spec), with P
 * invocations per row: a power of two dividing N / 4 and the subgroup size. MODE 1 writes raw sums
 * to the output while other workgroups of the head still read the inputs: none may alias it. */
static rwkv_status wkv7_rows_pipelines(struct vk_dev *d, const struct rwkv_op *op, const uint32_t plain[VK_SPEC],
                                       struct vk_op_kernel *ok, struct rwkv_error *err)
{
    uint32_t N = plain[0], P = d->wkv7_rows > 0 ? (uint32_t)d->wkv7_rows : VK_WKV7_ROWS_P;
    if (d->wkv7_rows == 0)
        return RWKV_OK;
    int fits = vk_kernel_available(d, VK_K_WKV7_ROWS, RWKV_DTYPE_F32) && (P & (P - 1)) == 0 && N % (4 * P) == 0 &&
               P <= d->feat.subgroup_size;
    for (int i = 0; i < RWKV_OP_MAX_IN; i++)
        fits = fits && op->in[i].buf != op->out.buf;
    if (!fits) {
        if (d->wkv7_rows > 0 && op->layer == 0) /* forced: say so once per model */
            fprintf(stderr, "rwkv: vulkan: RWKV_VK_WKV7_ROWS=%d needs subgroup shuffles and a power of two dividing "
                    "head size / 4 (%u) and the subgroup size (%u): the plain WKV7 kernel\n", d->wkv7_rows, N / 4,
                    d->feat.subgroup_size);
        return RWKV_OK;
    }
    uint32_t spec[VK_SPEC] = {N, plain[1], 1, P};
    rwkv_status st = optional_pipeline(d, VK_K_WKV7_ROWS, RWKV_DTYPE_F32, spec, &ok->rows, err);
    spec[2] = 2;
    if (!st && ok->rows)
        st = optional_pipeline(d, VK_K_WKV7_NORM, RWKV_DTYPE_F32, spec, &ok->norm, err);
    if (!ok->norm) /* both or neither */
        ok->rows = VK_NULL_HANDLE;
    ok->rows_p = P;
    return st;
}

/* ---- one-token chunks: a NORMMIX folded into the GEMVs that read it (gemv.comp MIX) ---- */

/* For NORMMIX op g (v7, with its one-token variant and shift): every op after the group reading the
 * norm's output, the shift's or a LERP's before it is written again must be a MATMUL of a whole LERP
 * output with a one-token GEMV, K <= 8192; then chunks of one token skip g's dispatch (a stage of
 * about 6 us on an H200) and those GEMVs make their inputs themselves, the first also writing the
 * norm's output, which a SHIFT dispatch stores in the state after them. */
static rwkv_status plan_mix_fuse(struct vk_dev *d, const struct rwkv_model *m, struct vk_model *vm, int g,
                                 struct rwkv_error *err)
{
    const struct rwkv_program *p = &m->program;
    struct vk_op_kernel *ok = &vm->ok[g];
    int C = p->ops[g].out.width, shift = ok->shift_op;
    size_t shared = (size_t)C * 4 + 2 * 4 * 1024;
    if (!d->mix_fuse || m->info.arch != RWKV_ARCH_V7 || !ok->one || shift < 0 || C % 8 || C > 8192 ||
        shared > d->lim.max_shared || !vk_kernel_available(d, VK_K_GEMV_MIX, RWKV_DTYPE_F32))
        return RWKV_OK;
    int buf[2 + VK_MIX_MAX], live[2 + VK_MIX_MAX], n = 2;
    buf[0] = p->ops[g].out.buf;
    buf[1] = p->ops[shift].out.buf;
    for (int j = 0; j < VK_MIX_MAX && ok->lerp_op[j] >= 0; j++)
        buf[n++] = p->ops[ok->lerp_op[j]].out.buf;
    for (int b = 0; b < n; b++)
        live[b] = 1;
    enum { MAX_CONSUMERS = 16 };
    int cons[MAX_CONSUMERS], cj[MAX_CONSUMERS], nc = 0;
    for (int o = ok->group_end + 1; o < p->n_ops; o++) {
        const struct rwkv_op *op = &p->ops[o];
        const struct vk_op_kernel *ko = &vm->ok[o];
        if (op->kind == RWKV_OP_HOOK) /* hooked chunks run by ops */
            continue;
        for (int b = 0; b < n; b++) { /* every op, absorbed ones too: their reads and writes count */
            int reads = 0;
            for (int i = 0; i < RWKV_OP_MAX_IN; i++)
                reads |= live[b] && op->in[i].buf == buf[b];
            if (!reads)
                continue;
            if (b < 2 || op->kind != RWKV_OP_MATMUL || ko->kernel != VK_K_MATMUL || ko->group_end < 0 ||
                !ko->mm[VK_MM_GEMV1] ||
                !same_view(op->in[0], p->ops[ok->lerp_op[b - 2]].out) || op->in[0].width != C || nc == MAX_CONSUMERS)
                return RWKV_OK;
            cons[nc] = o;
            cj[nc++] = b - 2;
        }
        for (int b = 0; b < n; b++)
            if (op->out.buf == buf[b] || (ko->lerp_op[0] >= 0 && p->ops[ko->lerp_op[0]].out.buf == buf[b]))
                live[b] = 0;
    }
    uint32_t spec[VK_SPEC] = {VK_WG_ROWS};
    VkPipeline store = VK_NULL_HANDLE, mix[MAX_CONSUMERS];
    rwkv_status st = nc ? optional_pipeline(d, VK_K_SHIFT, RWKV_DTYPE_F32, spec, &store, err) : RWKV_OK;
    /* few large workgroups, each making the input once and walking many blocks of rows: a subgroup
     * per row, the largest workgroups the device allows (up to 1024), two per multiprocessor */
    uint32_t sgs = d->feat.subgroup_size ? d->feat.subgroup_size : 32;
    uint32_t wg = d->mix_wg > 0 ? (uint32_t)d->mix_wg : 1024;
    wg = (wg < d->lim.max_wg ? wg : d->lim.max_wg) / sgs * sgs;
    uint32_t per_sm = d->mix_per_sm > 0 && d->mix_per_sm <= 64 ? (uint32_t)d->mix_per_sm : 2;
    if (!wg)
        return RWKV_OK;
    for (int i = 0; i < nc && !st && store; i++) {
        uint32_t unroll = d->mix_unroll > 0 && d->mix_unroll <= 16 ? (uint32_t)d->mix_unroll : 4;
        uint32_t ms[VK_SPEC] = {wg, wg / sgs, 1, unroll, (uint32_t)C};
        st = optional_pipeline(d, VK_K_GEMV_MIX, vm->w[p->ops[cons[i]].w[0]].dtype, ms, &mix[i], err);
        if (!st && !mix[i])
            store = VK_NULL_HANDLE; /* all or none */
    }
    if (st || !nc || !store)
        return st;
    ok->mix_fused = 1;
    ok->shift_store = store;
    ok->mix_dispatches = 0;
    for (int i = 0; i < nc; i++) {
        ok->mix_dispatches += vm->ok[cons[i]].n_parts;
        vm->ok[cons[i]].mix_rows = wg / sgs;
        vm->ok[cons[i]].mix_groups = d->feat.sm_count ? per_sm * d->feat.sm_count : 128;
        vm->ok[cons[i]].gemv_mix = mix[i];
        vm->ok[cons[i]].mix_src = g;
        vm->ok[cons[i]].mix_j = cj[i];
        vm->ok[cons[i]].mix_xx = i == 0;
    }
    return RWKV_OK;
}

static rwkv_status op_kernels(struct vk_dev *d, const struct rwkv_model *m, struct vk_model *vm, struct rwkv_error *err)
{
    for (int o = 0; o < m->program.n_ops; o++) {
        const struct rwkv_op *op = &m->program.ops[o];
        struct vk_op_kernel *ok = &vm->ok[o];
        ok->kernel = ok->group_end < 0 ? -1 : kernel_of(op->kind); /* absorbed ops have no dispatch */
        if (ok->kernel < 0)
            continue;
        rwkv_status st = check_op(d, op, err);
        if (st)
            return st;
        uint32_t spec[VK_SPEC] = {VK_WG_ROWS};
        enum rwkv_dtype dt = RWKV_DTYPE_F32;
        ok->n_parts = 1;
        if (op->kind == RWKV_OP_MATMUL || op->kind == RWKV_OP_EMBED) {
            dt = vm->w[op->w[0]].dtype;
            ok->n_parts = vm->w[op->w[0]].n_parts;
        }
        switch (ok->kernel) {
        case VK_K_NORMMIX: { /* VK_NORM_PER channels per invocation (more where the device allows fewer) */
            uint32_t C = (uint32_t)op->out.width, max = d->lim.max_wg < 1024 ? d->lim.max_wg : 1024;
            uint32_t wg = ((C + VK_NORM_PER - 1) / VK_NORM_PER + 31) / 32 * 32;
            spec[0] = wg < max ? wg : max;
            spec[1] = (C + spec[0] - 1) / spec[0];
            /* one-token chunks (with the shift): a workgroup of 256 per 256 channels, up to 16 per row */
            uint32_t one[VK_SPEC] = {max < 256 ? max : 256};
            one[1] = ok->one_split = (C + one[0] - 1) / one[0] < 16 ? (C + one[0] - 1) / one[0] : 16;
            if (ok->shift_op >= 0 && d->wkv7_one &&
                (st = optional_pipeline(d, VK_K_NORMMIX_ONE, dt, one, &ok->one, err)))
                return st;
            break;
        }
        case VK_K_ROWS: spec[1] = (uint32_t)rows_mode(op->kind); break;
        case VK_K_MATMUL: {
            if ((st = mm_pipelines(d, m, op, dt, ok, err)))
                return st;
            uint32_t sp[VK_SPEC] = {256, VK_SPARSE_OPW};
            if (ok->wt.size && vk_kernel_available(d, VK_K_GEMV_SPARSE, RWKV_DTYPE_F16) &&
                (st = optional_pipeline(d, VK_K_GEMV_SPARSE, RWKV_DTYPE_F16, sp, &ok->sparse, err)))
                return st;
            continue;
        }
        case VK_K_WKV5: spec[0] = (uint32_t)op->head_size; break;
        case VK_K_WKV7: {
            /* and the one-token variant, where the device has it: 4 N invocations, N % 16 == 0 */
            uint32_t N = (uint32_t)op->head_size, one[VK_SPEC] = {4 * N};
            enum rwkv_dtype ldt;
            int fits = N % 16 == 0 && 4 * N <= d->lim.max_wg &&
                       (8 * N + 2 * 4 * N) * sizeof(float) <= d->lim.max_shared && d->wkv7_one;
            if (fits && vk_kernel_available(d, VK_K_WKV7_ONE, dt) &&
                (st = optional_pipeline(d, VK_K_WKV7_ONE, dt, one, &ok->one, err)))
                return st;
            if (fits && ok->one && d->wkv7_one == 2 && plan_wkv7_lora(m, vm, o, &ldt) &&
                vk_kernel_available(d, VK_K_WKV7_LORA, ldt)) {
                for (int j = 0; j < 4; j++) /* the hidden sizes: loops of constant length */
                    one[1 + j] = ok->lora_ops[j] >= 0 ? (uint32_t)m->program.ops[ok->lora_ops[j]].in[0].width : 0;
                if ((st = optional_pipeline(d, VK_K_WKV7_LORA, ldt, one, &ok->lora, err)))
                    return st;
                for (int j = 0; j < 4 && ok->lora; j++) /* its projections are skipped where it runs */
                    if (ok->lora_ops[j] >= 0)
                        vm->ok[ok->lora_ops[j]].absorbed_by = o;
            }
            spec[0] = N;
            spec[1] = wkv7_block(d, spec[0]);
            if ((st = wkv7_rows_pipelines(d, op, spec, ok, err)))
                return st;
            break;
        }
        default: break;
        }
        if ((st = vk_pipeline_get(d, ok->kernel, dt, spec, &ok->pipeline, err)))
            return st;
    }
    for (int o = 0; o < m->program.n_ops; o++) /* after every MATMUL has its variants */
        if (vm->ok[o].kernel == VK_K_NORMMIX) {
            rwkv_status st = plan_mix_fuse(d, m, vm, o, err);
            if (st)
                return st;
        }
    return RWKV_OK;
}

static void vk_model_free(struct rwkv_model *m)
{
    struct vk_model *vm = (struct vk_model *)m->backend;
    if (!vm)
        return;
    struct vk_dev *d = dev_of(m);
    vk_token_model_free(vm);
    vk_pool_free(d, &vm->pool);
    if (vm->w)
        for (int i = 0; i < m->n_weights; i++)
            free(vm->w[i].parts);
    free(vm->w);
    free(vm->ok);
    free(vm);
    m->backend = NULL;
}

static rwkv_status vk_model_init(struct rwkv_model *m, struct rwkv_error *err)
{
    struct vk_dev *d = dev_of(m);
    struct vk_model *vm = calloc(1, sizeof *vm);
    unsigned char *role = calloc((size_t)m->n_weights + 1, 1);
    rwkv_status st = RWKV_OK;
    if (vm) {
        m->backend = (struct rwkv_backend_model *)vm;
        vk_pool_init(&vm->pool, d->lim.split_bytes, d->lim.align);
        vm->w = calloc((size_t)m->n_weights + 1, sizeof *vm->w);
        vm->ok = calloc((size_t)m->program.n_ops + 1, sizeof *vm->ok);
    }
    if (!vm || !role || !vm->w || !vm->ok) {
        st = rwkv_fail(err, RWKV_ERR_NOMEM, "out of memory");
        goto done;
    }
    if ((st = weight_roles(m, role, err)))
        goto done;
    for (int i = 0; i < m->n_weights && !st; i++)
        if (role[i] != ROLE_NONE)
            st = plan_weight(d, vm, &m->weights[i], i, role[i], err);
    if (!st)
        st = plan_groups(m, vm, err);
    if (!st)
        st = plan_sparse(d, m, vm, err);
    if (!st)
        st = vk_pool_commit(d, &vm->pool, VK_BUFFER_USAGE_STORAGE_BUFFER_BIT | VK_BUFFER_USAGE_TRANSFER_DST_BIT, VK_MEM_DEVICE, err);
    if (!st)
        st = upload(d, m, vm, err);
    if (!st)
        st = op_kernels(d, m, vm, err);
    if (!st)
        st = vk_token_model_init(m, vm, err);
done:
    free(role);
    if (st)
        vk_model_free(m);
    return st;
}

/* ---- state ---- */

static size_t op_state_floats(const struct rwkv_op *op)
{
    switch (op->kind) {
    case RWKV_OP_SHIFT: return (size_t)op->out.width;
    case RWKV_OP_WKV4: return 3 * (size_t)op->head_size;
    case RWKV_OP_WKV5:
    case RWKV_OP_WKV7: return (size_t)op->heads * op->head_size * op->head_size;
    default: return 0;
    }
}

static int cmp_region(const void *a, const void *b)
{
    const struct vk_region *x = a, *y = b;
    return x->start < y->start ? -1 : x->start > y->start;
}

/* Regions: the ranges the ops use, sorted, plus the gaps between them, so that they cover the slot. */
static rwkv_status build_regions(struct rwkv_state *s, struct vk_state *vs, struct rwkv_error *err)
{
    const struct rwkv_program *p = &s->model->program;
    int n = 0;
    vs->regions = calloc(2 * (size_t)p->n_ops + 2, sizeof *vs->regions);
    vs->op_region = malloc(((size_t)p->n_ops + 1) * sizeof *vs->op_region);
    if (!vs->regions || !vs->op_region)
        return rwkv_fail(err, RWKV_ERR_NOMEM, "out of memory");
    for (int o = 0; o < p->n_ops; o++)
        if (op_state_floats(&p->ops[o]))
            vs->regions[n++] = (struct vk_region){p->ops[o].state_off, op_state_floats(&p->ops[o]), {0, 0, 0}};
    qsort(vs->regions, (size_t)n, sizeof *vs->regions, cmp_region);
    int m = 0;
    size_t end = 0;
    for (int i = 0; i < n; i++) { /* merge duplicates and overlaps */
        struct vk_region r = vs->regions[i];
        if (m > 0 && r.start < end) {
            size_t e = r.start + r.floats > end ? r.start + r.floats : end;
            vs->regions[m - 1].floats = e - vs->regions[m - 1].start;
            end = e;
            continue;
        }
        vs->regions[m++] = r;
        end = r.start + r.floats;
    }
    size_t pos = 0;
    int count = m;
    for (int i = 0; i < m; i++) { /* gaps: kept so that read/write round-trip every float */
        if (vs->regions[i].start > pos)
            vs->regions[count++] = (struct vk_region){pos, vs->regions[i].start - pos, {0, 0, 0}};
        pos = vs->regions[i].start + vs->regions[i].floats;
    }
    if (pos < p->state_floats)
        vs->regions[count++] = (struct vk_region){pos, p->state_floats - pos, {0, 0, 0}};
    qsort(vs->regions, (size_t)count, sizeof *vs->regions, cmp_region);
    vs->n_regions = count;
    for (int o = 0; o < p->n_ops; o++) {
        vs->op_region[o] = -1;
        for (int i = 0; i < count && op_state_floats(&p->ops[o]); i++)
            if (p->ops[o].state_off >= vs->regions[i].start &&
                p->ops[o].state_off < vs->regions[i].start + vs->regions[i].floats)
                vs->op_region[o] = i;
    }
    return RWKV_OK;
}

static size_t chunk_words(const struct rwkv_state *s)
{
    /* header, tokens[T], tok_seg[T], seg_slot/start/len[B], out_rows[T], out_softmax[T] */
    return VK_CHUNK_HEADER + 4 * (size_t)s->token_chunk_size + 3 * (size_t)s->num_batch;
}

/* Per-output tile rows: all requested logits rows, or as many as one descriptor of each such buffer holds. */
static void plan_tiles(const struct rwkv_state *s, const struct vk_dev *d, struct vk_state *vs)
{
    const struct rwkv_program *p = &s->model->program;
    size_t wmax = 1;
    for (int i = 0; i < p->n_buffers; i++)
        if (p->buffers[i].per_output && (size_t)p->buffers[i].width > wmax)
            wmax = (size_t)p->buffers[i].width;
    size_t rows = (size_t)(d->lim.split_bytes / (wmax * sizeof(float)));
    rows = rows < 1 ? 1 : rows;
    vs->out_tile = rows < (size_t)s->token_chunk_size ? (int)rows : s->token_chunk_size;
    vs->first_out_op = p->n_ops;
    for (int o = 0; o < p->n_ops; o++)
        if (p->ops[o].out.buf >= 0 && p->buffers[p->ops[o].out.buf].per_output) {
            vs->first_out_op = o;
            break;
        }
}

static rwkv_status check_tiles(const struct rwkv_state *s, const struct vk_state *vs, struct rwkv_error *err)
{
    const struct rwkv_program *p = &s->model->program;
    for (int o = vs->first_out_op; o < p->n_ops; o++) {
        const struct rwkv_op *op = &p->ops[o];
        if (op->kind != RWKV_OP_HOOK && !p->buffers[op->out.buf].per_output)
            return rwkv_fail(err, RWKV_ERR_UNSUPPORTED, "vulkan: the program runs a per-token op (%s) after the "
                             "per-output ops", rwkv_op_name(op->kind));
    }
    if (!p->buffers[p->logits_buf].per_output)
        return rwkv_fail(err, RWKV_ERR_UNSUPPORTED, "vulkan: the logits buffer is not per-output");
    return RWKV_OK;
}

static rwkv_status plan_buffers(struct rwkv_state *s, struct vk_dev *d, struct vk_state *vs, struct rwkv_error *err)
{
    const struct rwkv_program *p = &s->model->program;
    vk_pool_init(&vs->act, d->lim.max_range, d->lim.align);
    char what[96];
    for (int i = 0; i < p->n_buffers; i++) {
        size_t rows = p->buffers[i].per_output ? (size_t)vs->out_tile : (size_t)s->token_chunk_size;
        snprintf(what, sizeof what, "runtime buffer '%s' for %zu tokens", p->buffers[i].name, rows);
        rwkv_status st = vk_pool_reserve(&vs->act, rows * (size_t)p->buffers[i].width * sizeof(float), &vs->bufs[i],
                                         what, err);
        if (st)
            return st;
    }
    /* the chunk table: written by the host straight into device memory where it can (no copy, no
     * barrier per chunk), else copied there */
    vs->chunk_words = chunk_words(s);
    int direct = !d->table_copy && vk_has_mapped_device(d, VK_BUFFER_USAGE_STORAGE_BUFFER_BIT);
    vk_pool_init(&vs->table, vs->chunk_words * 4 + 16, d->lim.align);
    rwkv_status st = vk_pool_reserve(direct ? &vs->table : &vs->act, vs->chunk_words * 4, &vs->chunk, "chunk table",
                                     err);
    if (!st)
        st = vk_token_reserve(s, vs, err);
    if (!st && direct)
        st = vk_pool_commit(d, &vs->table, VK_BUFFER_USAGE_STORAGE_BUFFER_BIT, VK_MEM_MAPPED_DEVICE, err);
    /* split-K partial sums: the parts of the widest token-side matrix whose tiles may be few, within
     * VK_KSPLIT_SCRATCH (vk_exec.c splits only what fits) */
    size_t widest = 0;
    for (int o = 0; o < p->n_ops && o < vs->first_out_op; o++)
        if (p->ops[o].kind == RWKV_OP_MATMUL && (size_t)p->ops[o].out.width > widest)
            widest = (size_t)p->ops[o].out.width;
    size_t scratch = (size_t)VK_KSPLIT_MAX * (size_t)s->token_chunk_size * widest * sizeof(float);
    scratch = scratch < VK_KSPLIT_SCRATCH ? scratch : VK_KSPLIT_SCRATCH;
    if (!st && d->feat.coopmat != VK_COOPMAT_OFF && d->ksplit != 0 && s->token_chunk_size > VK_GEMV_MAX_T)
        st = vk_pool_reserve(&vs->act, scratch, &vs->scratch, "split-K scratch", err);
    for (int i = 0; i < vs->n_regions && !st; i++) {
        snprintf(what, sizeof what, "state of %d slots", s->num_batch);
        st = vk_pool_reserve(&vs->act, (VkDeviceSize)s->num_batch * vs->regions[i].floats * sizeof(float),
                             &vs->regions[i].span, what, err);
    }
    if (!st)
        st = vk_pool_commit(d, &vs->act, VK_BUFFER_USAGE_STORAGE_BUFFER_BIT | VK_BUFFER_USAGE_TRANSFER_SRC_BIT |
                            VK_BUFFER_USAGE_TRANSFER_DST_BIT, VK_MEM_DEVICE, err);
    if (st)
        return st;
    size_t sf = p->state_floats * sizeof(float);
    size_t up = vs->chunk_words * 4 > sf ? vs->chunk_words * 4 : sf;
    size_t logits = (size_t)s->token_chunk_size * (size_t)p->buffers[p->logits_buf].width * sizeof(float);
    /* logits rows, then (apart: rwkv_state_logits_area stays the caller's) a slot's state on its way out */
    vs->down_state = (logits + 255) / 256 * 256;
    if ((st = vk_staging_new(d, &vs->up, up, err)))
        return st;
    return vk_staging_new(d, &vs->down, vs->down_state + sf, err);
}

/* ---- descriptor sets ---- */

static VkDescriptorBufferInfo buf_info(const struct vk_state *vs, int buf, const struct vk_dev *d)
{
    if (buf < 0)
        return (VkDescriptorBufferInfo){d->dummy, 0, VK_WHOLE_SIZE};
    return vk_span_info(&vs->act, vs->bufs[buf]);
}

/* normmix.comp's bindings: xx, x, sx, the six outputs, params, the shift state, the chunk table. */
static int mix_bindings(const struct rwkv_model *m, const struct vk_state *vs, int o, VkDescriptorBufferInfo *info)
{
    const struct rwkv_program *p = &m->program;
    const struct vk_model *vm = (const struct vk_model *)m->backend;
    const struct vk_op_kernel *ok = &vm->ok[o];
    const struct vk_dev *d = m->device->priv;
    int n = 0, s = ok->shift_op;
    info[n++] = buf_info(vs, p->ops[o].out.buf, d);
    info[n++] = buf_info(vs, p->ops[o].in[0].buf, d);
    info[n++] = buf_info(vs, s >= 0 ? p->ops[s].out.buf : -1, d);
    for (int j = 0; j < VK_MIX_MAX; j++)
        info[n++] = buf_info(vs, ok->lerp_op[j] >= 0 ? p->ops[ok->lerp_op[j]].out.buf : -1, d);
    info[n++] = vk_span_info(&vm->pool, ok->params);
    info[n++] = s >= 0 ? vk_span_info(&vs->act, vs->regions[vs->op_region[s]].span) : buf_info(vs, -1, d);
    info[n++] = vk_span_info(vk_table_pool(vs), vs->chunk);
    return n;
}

static int op_bindings(const struct rwkv_model *m, const struct vk_state *vs, int o, int part,
                       VkDescriptorBufferInfo *info)
{
    const struct rwkv_op *op = &m->program.ops[o];
    const struct vk_model *vm = (const struct vk_model *)m->backend;
    const struct vk_dev *d = m->device->priv;
    const struct vk_kernel_desc *k = &vk_kernels[vm->ok[o].kernel];
    if (vm->ok[o].kernel == VK_K_NORMMIX)
        return mix_bindings(m, vs, o, info);
    int n = 0;
    info[n++] = buf_info(vs, op->out.buf, d);
    for (int i = 0; i < k->n_in; i++)
        info[n++] = buf_info(vs, op->in[i].buf, d);
    for (int i = 0; i < k->n_w; i++) {
        if (op->w[i] < 0) {
            info[n++] = buf_info(vs, -1, d);
            continue;
        }
        const struct vk_tensor *t = &vm->w[op->w[i]];
        info[n++] = vk_span_info(&vm->pool, t->parts[is_matrix_slot(op, i) ? part : 0].span);
    }
    if (k->state)
        info[n++] = vk_span_info(&vs->act, vs->regions[vs->op_region[o]].span);
    if (k->chunk)
        info[n++] = vk_span_info(vk_table_pool(vs), vs->chunk);
    if (k->extra) { /* MATMUL: the absorbed LERP's in0, in1 and out; the split-K scratch */
        int l = vm->ok[o].lerp_op[0];
        const struct rwkv_op *lp = l >= 0 ? &m->program.ops[l] : NULL;
        info[n++] = buf_info(vs, lp ? lp->in[0].buf : -1, d);
        info[n++] = buf_info(vs, lp ? lp->in[1].buf : -1, d);
        info[n++] = buf_info(vs, lp ? lp->out.buf : -1, d);
        info[n++] = vs->scratch.size ? vk_span_info(&vs->act, vs->scratch) : buf_info(vs, -1, d);
    }
    return n;
}

/* wkv7_one.comp's LORA bindings, after WKV7's own: the hidden vectors, the matrices, the biases, v_first. */
static int lora_bindings(const struct rwkv_model *m, const struct vk_state *vs, int o, VkDescriptorBufferInfo *info)
{
    const struct rwkv_program *p = &m->program;
    const struct vk_model *vm = (const struct vk_model *)m->backend;
    const struct vk_op_kernel *ok = &vm->ok[o];
    const struct vk_dev *d = m->device->priv;
    int n = op_bindings(m, vs, o, 0, info);
    for (int j = 0; j < 4; j++)
        info[n++] = buf_info(vs, ok->lora_ops[j] >= 0 ? p->ops[ok->lora_ops[j]].in[0].buf : -1, d);
    for (int j = 0; j < 4; j++)
        info[n++] = ok->lora_ops[j] >= 0 ? vk_span_info(&vm->pool, vm->w[p->ops[ok->lora_ops[j]].w[0]].parts[0].span)
                                         : buf_info(vs, -1, d);
    static const int biased[3] = {0, 1, 3}; /* w, a, v */
    for (int j = 0; j < 3; j++) {
        int b = ok->lora_ops[biased[j]];
        info[n++] = b >= 0 ? vk_span_info(&vm->pool, vm->w[p->ops[b].w[1]].parts[0].span) : buf_info(vs, -1, d);
    }
    int v2 = ok->lora_ops[3];
    info[n++] = buf_info(vs, v2 >= 0 ? p->ops[vm->ok[v2].lerp_op[0]].in[1].buf : -1, d);
    return n;
}

/* gemv.comp MIX's bindings for MATMUL op o (its own, with x for the LERP output, then the NORMMIX
 * group's parameters, the shift state, the chunk table, the norm's output); or, for NORMMIX op o,
 * its SHIFT's (the store after the consumers: out, in0, state, chunk). */
static int fused_bindings(const struct rwkv_model *m, const struct vk_state *vs, int o, int part,
                          VkDescriptorBufferInfo *info)
{
    const struct vk_model *vm = (const struct vk_model *)m->backend;
    const struct rwkv_program *p = &m->program;
    const struct vk_dev *d = m->device->priv;
    if (vm->ok[o].kernel == VK_K_NORMMIX) {
        const struct rwkv_op *sh = &p->ops[vm->ok[o].shift_op];
        info[0] = buf_info(vs, sh->out.buf, d);
        info[1] = buf_info(vs, sh->in[0].buf, d);
        info[2] = vk_span_info(&vs->act, vs->regions[vs->op_region[vm->ok[o].shift_op]].span);
        info[3] = vk_span_info(vk_table_pool(vs), vs->chunk);
        return 4;
    }
    int g = vm->ok[o].mix_src, n = op_bindings(m, vs, o, part, info);
    info[1] = buf_info(vs, p->ops[g].in[0].buf, d);
    info[n++] = vk_span_info(&vm->pool, vm->ok[g].params);
    info[n++] = vk_span_info(&vs->act, vs->regions[vs->op_region[vm->ok[g].shift_op]].span);
    info[n++] = vk_span_info(vk_table_pool(vs), vs->chunk);
    info[n++] = buf_info(vs, p->ops[g].out.buf, d);
    return n;
}

static rwkv_status alloc_set(struct vk_dev *d, struct vk_state *vs, int kernel, const VkDescriptorBufferInfo *info,
                             int n, VkDescriptorSet *set, struct rwkv_error *err)
{
    VkDescriptorSetLayout layout = vk_set_layout(d, kernel);
    VkDescriptorSetAllocateInfo ai = {.sType = VK_STRUCTURE_TYPE_DESCRIPTOR_SET_ALLOCATE_INFO,
                                      .descriptorPool = vs->desc_pool, .descriptorSetCount = 1, .pSetLayouts = &layout};
    VkResult r = vkAllocateDescriptorSets(d->device, &ai, set);
    if (r != VK_SUCCESS)
        return vk_fail(d, r, err, "vkAllocateDescriptorSets");
    VkWriteDescriptorSet w = {.sType = VK_STRUCTURE_TYPE_WRITE_DESCRIPTOR_SET, .dstSet = *set,
                              .descriptorCount = (uint32_t)n, .descriptorType = VK_DESCRIPTOR_TYPE_STORAGE_BUFFER,
                              .pBufferInfo = info};
    vkUpdateDescriptorSets(d->device, 1, &w, 0, NULL);
    return RWKV_OK;
}

static rwkv_status build_sets(struct rwkv_state *s, struct vk_dev *d, struct vk_state *vs, struct rwkv_error *err)
{
    const struct rwkv_model *m = s->model;
    const struct vk_model *vm = (const struct vk_model *)m->backend;
    int n_disp = 0;
    uint32_t n_desc = 0;
    int n_sets = 0;
    for (int o = 0; o < m->program.n_ops; o++)
        if (vm->ok[o].kernel >= 0) {
            n_disp += vm->ok[o].n_parts;
            n_desc += (uint32_t)(vm->ok[o].n_parts * vk_kernel_bindings(vm->ok[o].kernel));
            if (vm->ok[o].lora) {
                n_desc += (uint32_t)vk_kernel_bindings(VK_K_WKV7_LORA);
                n_sets++;
            }
            if (vm->ok[o].sparse) {
                n_desc += (uint32_t)vk_kernel_bindings(VK_K_GEMV_SPARSE);
                n_sets++;
            }
            if (vm->ok[o].gemv_mix || vm->ok[o].mix_fused) { /* per part */
                int k = vm->ok[o].gemv_mix ? VK_K_GEMV_MIX : VK_K_SHIFT;
                n_desc += (uint32_t)(vm->ok[o].n_parts * vk_kernel_bindings(k));
                n_sets += vm->ok[o].n_parts;
            }
        }
    n_sets += n_disp + 1; /* and the softmax's */
    n_desc += (uint32_t)vk_kernel_bindings(VK_K_SOFTMAX);
    vs->disp = calloc((size_t)n_disp + 1, sizeof *vs->disp);
    if (!vs->disp)
        return rwkv_fail(err, RWKV_ERR_NOMEM, "out of memory");
    VkDescriptorPoolSize ps = {VK_DESCRIPTOR_TYPE_STORAGE_BUFFER, n_desc ? n_desc : 1};
    VkDescriptorPoolCreateInfo pi = {.sType = VK_STRUCTURE_TYPE_DESCRIPTOR_POOL_CREATE_INFO,
                                     .maxSets = (uint32_t)(n_sets ? n_sets : 1), .poolSizeCount = 1,
                                     .pPoolSizes = &ps};
    VkResult r = vkCreateDescriptorPool(d->device, &pi, NULL, &vs->desc_pool);
    if (r != VK_SUCCESS)
        return vk_fail(d, r, err, "vkCreateDescriptorPool");
    for (int o = 0; o < m->program.n_ops; o++) {
        int k = vm->ok[o].kernel;
        for (int part = 0; k >= 0 && part < vm->ok[o].n_parts; part++) {
            struct vk_dispatch *dp = &vs->disp[vs->n_disp];
            VkDescriptorBufferInfo info[VK_MAX_BINDINGS];
            rwkv_status st = alloc_set(d, vs, k, info, op_bindings(m, vs, o, part, info), &dp->set, err);
            if (!st && vm->ok[o].lora)
                st = alloc_set(d, vs, VK_K_WKV7_LORA, info, lora_bindings(m, vs, o, info), &dp->set_lora, err);
            if (!st && vm->ok[o].sparse) { /* the op's bindings with W^T for W */
                int n = op_bindings(m, vs, o, part, info);
                info[2] = vk_span_info(&vm->pool, vm->ok[o].wt);
                st = alloc_set(d, vs, VK_K_GEMV_SPARSE, info, n, &dp->set_sparse, err);
            }
            if (!st && (vm->ok[o].gemv_mix || vm->ok[o].mix_fused))
                st = alloc_set(d, vs, vm->ok[o].gemv_mix ? VK_K_GEMV_MIX : VK_K_SHIFT, info,
                               fused_bindings(m, vs, o, part, info), &dp->set_mix, err);
            if (st)
                return st;
            dp->op = o;
            dp->part = part;
            vs->n_disp++;
        }
    }
    /* softmax.comp over the logits buffer (the chunk's probabilities rows) */
    const struct rwkv_program *p = &m->program;
    VkDescriptorBufferInfo info[2] = {buf_info(vs, p->logits_buf, d), vk_span_info(vk_table_pool(vs), vs->chunk)};
    uint32_t spec[VK_SPEC] = {d->lim.max_wg < 256 ? d->lim.max_wg : 256};
    rwkv_status st = alloc_set(d, vs, VK_K_SOFTMAX, info, 2, &vs->softmax_set, err);
    return st ? st : vk_pipeline_get(d, VK_K_SOFTMAX, RWKV_DTYPE_F32, spec, &vs->softmax, err);
}

static void vk_state_free(struct rwkv_state *s)
{
    struct vk_state *vs = s->priv;
    if (!vs)
        return;
    struct vk_dev *d = dev_of(s->model);
    vk_exec_free(s);
    vk_cmd_free(d, &vs->cmd);
    vk_token_state_free(d, vs);
    if (vs->desc_pool)
        vkDestroyDescriptorPool(d->device, vs->desc_pool, NULL);
    vk_pool_free(d, &vs->act);
    vk_pool_free(d, &vs->table);
    vk_pool_free(d, &vs->up);
    vk_pool_free(d, &vs->down);
    free(vs->regions);
    free(vs->op_region);
    free(vs->disp);
    free(vs);
    s->priv = NULL;
}

/* ---- state transfers: region by region between the staging buffers and the device ---- */

enum xfer { TO_HOST, FROM_HOST, SLOT_TO_SLOT };

/* Records the copies of one slot's regions: to the download staging, from the upload staging (the
 * slot's floats at their state offsets), or from slot `src` to `slot`. */
static void record_slot(struct vk_state *vs, enum xfer dir, int slot, int src)
{
    for (int i = 0; i < vs->n_regions; i++) {
        const struct vk_region *r = &vs->regions[i];
        VkBuffer dev = vs->act.blocks[r->span.block].buffer;
        VkDeviceSize bytes = r->floats * sizeof(float);
        VkDeviceSize at = r->span.offset + (VkDeviceSize)slot * bytes;
        VkBufferCopy c = {at, vs->down_state + r->start * sizeof(float), bytes};
        if (dir == TO_HOST) {
            vkCmdCopyBuffer(vs->cmd.cb, dev, vs->down.blocks[0].buffer, 1, &c);
        } else if (dir == FROM_HOST) {
            c = (VkBufferCopy){r->start * sizeof(float), at, bytes};
            vkCmdCopyBuffer(vs->cmd.cb, vs->up.blocks[0].buffer, dev, 1, &c);
        } else {
            c = (VkBufferCopy){r->span.offset + (VkDeviceSize)src * bytes, at, bytes};
            vkCmdCopyBuffer(vs->cmd.cb, dev, dev, 1, &c);
        }
    }
}

/* Records the copies of `dir` for slots [first, first + count) and runs them. */
static rwkv_status transfer(const struct rwkv_state *s, enum xfer dir, int first, int count, int src,
                            struct rwkv_error *err)
{
    struct vk_dev *d = dev_of(s->model);
    struct vk_state *vs = s->priv;
    rwkv_status st = vk_cmd_begin(d, &vs->cmd, err);
    if (st)
        return st;
    for (int b = first; b < first + count; b++)
        record_slot(vs, dir, b, src);
    return vk_cmd_submit(d, &vs->cmd, err);
}

static rwkv_status vk_state_init(struct rwkv_state *s, struct rwkv_error *err)
{
    struct vk_dev *d = dev_of(s->model);
    struct vk_state *vs = calloc(1, sizeof *vs);
    if (!vs)
        return rwkv_fail(err, RWKV_ERR_NOMEM, "out of memory");
    s->priv = vs;
    plan_tiles(s, d, vs);
    rwkv_status st = check_tiles(s, vs, err);
    if (!st)
        st = build_regions(s, vs, err);
    if (!st)
        st = plan_buffers(s, d, vs, err);
    if (!st)
        st = build_sets(s, d, vs, err);
    if (!st)
        st = vk_cmd_init(d, &vs->cmd, err);
    if (!st)
        st = vk_token_state_init(s, err);
    if (!st)
        st = vk_exec_init(s, err);
    if (!st) {
        rwkv_state_initial(s->model, vk_span_host(&vs->up, (struct vk_span){0, 0, 0}));
        st = transfer(s, FROM_HOST, 0, s->num_batch, 0, err); /* every slot from one copy */
    }
    if (st)
        vk_state_free(s);
    return st;
}

static float *vk_logits_area(struct rwkv_state *s)
{
    struct vk_state *vs = s->priv;
    return vs->down.blocks[0].mapped;
}

static rwkv_status vk_state_read(const struct rwkv_state *s, int slot, float *dst, struct rwkv_error *err)
{
    const struct vk_state *vs = s->priv;
    rwkv_status st = transfer(s, TO_HOST, slot, 1, 0, err);
    if (!st)
        memcpy(dst, (const uint8_t *)vs->down.blocks[0].mapped + vs->down_state,
               s->model->program.state_floats * sizeof(float));
    return st;
}

static rwkv_status vk_state_write(struct rwkv_state *s, int slot, const float *src, struct rwkv_error *err)
{
    struct vk_state *vs = s->priv;
    memcpy(vs->up.blocks[0].mapped, src, s->model->program.state_floats * sizeof(float));
    return transfer(s, FROM_HOST, slot, 1, 0, err);
}

static rwkv_status vk_state_copy(struct rwkv_state *s, int src, int dst, struct rwkv_error *err)
{
    return src == dst ? RWKV_OK : transfer(s, SLOT_TO_SLOT, dst, 1, src, err);
}

/* Device-local buffer to buffer through copy.comp (16-byte loads and stores, as the kernels stream
 * weights; vkCmdCopyBuffer takes the copy engine, slower on some GPUs), timed by GPU timestamps around
 * each copy (else by the host clock around a submission of them); the best copy of rounds repeated
 * until the best stops improving for half a second (at most 3 s): a GPU left idle during a long model
 * upload can take that long to raise its clocks (an H200 measured 1.7 instead of 4.3 TB/s right after
 * a 14 GB upload, in some processes). Buffers larger than a block are capped at the block size. */
static rwkv_status vk_copy_bandwidth(struct rwkv_device *dev, size_t bytes, double *gbps, struct rwkv_error *err)
{
    struct vk_dev *d = dev->priv;
    VkDeviceSize n = bytes < d->lim.split_bytes ? bytes : d->lim.split_bytes;
    n &= ~(VkDeviceSize)255;
    struct vk_pool pool;
    struct vk_span a, b;
    struct vk_cmd cmd = {0};
    struct vk_timer timer = {0};
    VkDescriptorPool dpool = VK_NULL_HANDLE;
    VkDescriptorSet sets[2];
    VkPipeline pipe = VK_NULL_HANDLE;
    vk_pool_init(&pool, n, d->lim.align);
    rwkv_status st = vk_pool_reserve(&pool, n, &a, "copy source", err);
    if (!st)
        st = vk_pool_reserve(&pool, n, &b, "copy destination", err);
    if (!st)
        st = vk_pool_commit(d, &pool, VK_BUFFER_USAGE_STORAGE_BUFFER_BIT, VK_MEM_DEVICE, err);
    uint32_t spec[VK_SPEC] = {VK_WG_COPY};
    if (!st)
        st = vk_pipeline_get(d, VK_K_COPY, RWKV_DTYPE_F32, spec, &pipe, err);
    if (!st) { /* two sets: a to b and b to a */
        VkDescriptorPoolSize ps = {VK_DESCRIPTOR_TYPE_STORAGE_BUFFER, 4};
        VkDescriptorPoolCreateInfo pi = {.sType = VK_STRUCTURE_TYPE_DESCRIPTOR_POOL_CREATE_INFO, .maxSets = 2,
                                         .poolSizeCount = 1, .pPoolSizes = &ps};
        VkDescriptorSetLayout layouts[2] = {vk_set_layout(d, VK_K_COPY), vk_set_layout(d, VK_K_COPY)};
        VkDescriptorSetAllocateInfo ai = {.sType = VK_STRUCTURE_TYPE_DESCRIPTOR_SET_ALLOCATE_INFO,
                                          .descriptorSetCount = 2, .pSetLayouts = layouts};
        VkResult r = vkCreateDescriptorPool(d->device, &pi, NULL, &dpool);
        if (r == VK_SUCCESS) {
            ai.descriptorPool = dpool;
            r = vkAllocateDescriptorSets(d->device, &ai, sets);
        }
        if (r != VK_SUCCESS)
            st = vk_fail(d, r, err, "copy descriptor sets");
    }
    for (int i = 0; i < 2 && !st; i++) {
        VkDescriptorBufferInfo info[2] = {vk_span_info(&pool, i ? a : b), vk_span_info(&pool, i ? b : a)};
        VkWriteDescriptorSet w = {.sType = VK_STRUCTURE_TYPE_WRITE_DESCRIPTOR_SET, .dstSet = sets[i],
                                  .descriptorCount = 2, .descriptorType = VK_DESCRIPTOR_TYPE_STORAGE_BUFFER,
                                  .pBufferInfo = info};
        vkUpdateDescriptorSets(d->device, 1, &w, 0, NULL);
    }
    enum { COPIES = 8 };
    if (!st)
        st = vk_cmd_init(d, &cmd, err);
    if (!st)
        st = vk_timer_init(d, &timer, COPIES + 1, err);
    struct vk_push pc = {.width = (uint32_t)(n / 16)};
    uint32_t groups = (uint32_t)((pc.width + VK_WG_COPY - 1) / VK_WG_COPY);
    groups = groups > d->lim.max_groups[0] ? d->lim.max_groups[0] : groups;
    double best = 0, ns[COPIES + 1];
    VkPipelineLayout layout = vk_pipeline_layout(d, VK_K_COPY);
    double start = rwkv_time_seconds(), improved = start;
    for (int rep = 0; !st && (rep < 4 || rwkv_time_seconds() - improved < 0.5) && rwkv_time_seconds() - start < 3.0;
         rep++) {
        double before = best;
        if ((st = vk_cmd_begin(d, &cmd, err)))
            break;
        vk_timer_reset(cmd.cb, &timer);
        vkCmdBindPipeline(cmd.cb, VK_PIPELINE_BIND_POINT_COMPUTE, pipe);
        vkCmdPushConstants(cmd.cb, layout, VK_SHADER_STAGE_COMPUTE_BIT, 0, sizeof pc, &pc);
        vk_barrier_all(cmd.cb);
        vk_timer_mark(cmd.cb, &timer);
        for (int i = 0; i < COPIES; i++) {
            vkCmdBindDescriptorSets(cmd.cb, VK_PIPELINE_BIND_POINT_COMPUTE, layout, 0, 1, &sets[i & 1], 0, NULL);
            vkCmdDispatch(cmd.cb, groups, 1, 1);
            vk_barrier_all(cmd.cb);
            vk_timer_mark(cmd.cb, &timer);
        }
        double t0 = rwkv_time_seconds();
        st = vk_cmd_submit(d, &cmd, err);
        double t = rwkv_time_seconds() - t0;
        if (!st && timer.pool)
            st = vk_timer_read(d, &timer, ns, err);
        for (int i = 0; !st && rep > 0 && i < COPIES; i++) { /* each copy alone, or the submission */
            double s = timer.pool ? (ns[i + 1] - ns[i]) * 1e-9 : t / COPIES;
            if (s > 0 && 2.0 * (double)n / s > best)
                best = 2.0 * (double)n / s;
        }
        if (best > 1.02 * before)
            improved = rwkv_time_seconds();
    }
    vk_timer_free(d, &timer);
    vk_cmd_free(d, &cmd);
    if (dpool)
        vkDestroyDescriptorPool(d->device, dpool, NULL);
    vk_pool_free(d, &pool);
    *gbps = best / 1e9;
    return st;
}

const struct rwkv_backend_ops rwkv_vulkan_backend = {
    .name = "vulkan",
    .softmax = 1, /* softmax.comp, before the readback */
    .supports_hooks = 1, /* chunks with hooks run in pieces (vk_exec.c) */
    .device_open = vk_device_open,
    .device_free = vk_device_free,
    .model_init = vk_model_init,
    .model_free = vk_model_free,
    .state_init = vk_state_init,
    .state_free = vk_state_free,
    .state_read = vk_state_read,
    .state_write = vk_state_write,
    .state_copy = vk_state_copy,
    .run = vk_run,
    .logits_area = vk_logits_area,
    .copy_bandwidth = vk_copy_bandwidth,
};
