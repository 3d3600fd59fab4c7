/* Running one chunk: the chunk table goes up, the program's ops are recorded as dispatches (one per
 * weight part) with barriers only where an op touches a buffer an earlier unsynchronised op wrote (or
 * writes one it read), the per-output ops run per tile of logits rows, and only the requested rows
 * come back. One submission per chunk; the descriptor sets were written at state creation.
 *
 * Recordings are kept per chunk shape (tokens, segments, logits rows) and replayed: what else differs
 * between chunks (tokens, slots, rows) is in the chunk table, a buffer. A generation step then costs
 * the host one table write, one submission and the wait.
 *
 * Matrix ops pick their kernel by the chunk's token count: GEMV for few tokens (weight streaming),
 * tensor-core or fp32 tiles for many, the basic kernel where an op's shape fits neither. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/vulkan/vk_internal.h"
#include "core/error.h"
#include "core/platform.h"

#define STATE_BIT ((uint64_t)1 << 32)

/* Writes the chunk table into the upload staging buffer; returns its size in words. */
static size_t write_chunk_table(uint32_t *w, const struct rwkv_chunk *c)
{
    uint32_t T = (uint32_t)c->n_tokens, S = (uint32_t)c->n_seg;
    uint32_t off_tok_seg = VK_CHUNK_HEADER + T, off_slot = off_tok_seg + T;
    uint32_t off_start = off_slot + S, off_len = off_start + S, off_out = off_len + S;
    uint32_t hdr[VK_CHUNK_HEADER] = {off_tok_seg, off_slot, off_start, off_len, off_out, 0, 0, 0};
    memcpy(w, hdr, sizeof hdr);
    for (uint32_t t = 0; t < T; t++)
        w[VK_CHUNK_HEADER + t] = (uint32_t)c->tokens[t];
    for (uint32_t s = 0; s < S; s++) {
        w[off_slot + s] = (uint32_t)c->seg_slot[s];
        w[off_start + s] = (uint32_t)c->seg_start[s];
        w[off_len + s] = (uint32_t)c->seg_len[s];
        for (int32_t t = 0; t < c->seg_len[s]; t++)
            w[off_tok_seg + (uint32_t)c->seg_start[s] + (uint32_t)t] = s;
    }
    for (int r = 0; r < c->n_out; r++) {
        w[off_out + (uint32_t)r] = (uint32_t)c->out_rows[r];
        w[off_out + (uint32_t)c->n_out + (uint32_t)r] = c->out_softmax[r]; /* softmax.comp */
    }
    return off_out + 2 * (size_t)c->n_out;
}

struct recorder {
    const struct rwkv_model *m;
    const struct vk_model *vm;
    struct vk_state *vs;
    struct vk_dev *d;
    const struct rwkv_chunk *chunk;
    VkCommandBuffer cb;
    VkPipeline bound;
    int last_op;
    uint64_t read, written; /* buffers touched since the last barrier */
    struct vk_prof *prof;   /* per-dispatch timestamps (RWKV_VK_PROFILE=1), else NULL */
    int barriers, dispatches;
    int scratch_read;       /* a split-K sum reads the scratch since the last barrier */
    int hooked;             /* a chunk run in pieces for hooks: no op absorbed into WKV7 */
    const struct vk_dispatch *pending; /* a NORMMIX folded into its consumers whose SHIFT store waits for
                             * the first barrier after them (they read the state it overwrites), or NULL... */
    int pending_left;       /* ...and how many of their dispatches are still to be recorded */
};

static uint64_t buf_bit(int buf)
{
    return buf >= 0 ? (uint64_t)1 << buf : 0;
}

static void op_masks(const struct rwkv_op *op, uint64_t *rd, uint64_t *wr)
{
    *rd = 0;
    for (int i = 0; i < RWKV_OP_MAX_IN; i++)
        *rd |= buf_bit(op->in[i].buf);
    *wr = buf_bit(op->out.buf);
    if (op->accumulate || op->kind == RWKV_OP_MULADD)
        *rd |= *wr;
    if (op->kind == RWKV_OP_SHIFT || op->kind == RWKV_OP_WKV4 || op->kind == RWKV_OP_WKV5 || op->kind == RWKV_OP_WKV7) {
        *rd |= STATE_BIT;
        *wr |= STATE_BIT;
    }
}

static void compute_barrier(VkCommandBuffer cb)
{
    VkMemoryBarrier b = {.sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER, .srcAccessMask = VK_ACCESS_SHADER_WRITE_BIT,
                         .dstAccessMask = VK_ACCESS_SHADER_READ_BIT | VK_ACCESS_SHADER_WRITE_BIT};
    vkCmdPipelineBarrier(cb, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT, 0, 1, &b, 0,
                         NULL, 0, NULL);
}

/* What the dispatches of op `o` read and write: those of every op it performs (NORMMIX and a MATMUL
 * with its LERP perform several). */
static void group_masks(const struct rwkv_model *m, int o, uint64_t *rd, uint64_t *wr)
{
    const struct vk_model *vm = (const struct vk_model *)m->backend;
    *rd = *wr = 0;
    for (int a = o; a <= vm->ok[o].group_end; a++) {
        uint64_t ar, aw;
        op_masks(&m->program.ops[a], &ar, &aw);
        *rd |= ar;
        *wr |= aw;
    }
}

static void barrier_now(struct recorder *r)
{
    compute_barrier(r->cb);
    r->barriers++;
    r->read = r->written = 0;
    r->scratch_read = 0;
}

static void fill_push(const struct recorder *r, int o, int part, uint32_t rows, uint32_t out_base, struct vk_push *pc)
{
    const struct rwkv_program *p = &r->m->program;
    const struct rwkv_op *op = &p->ops[o];
    memset(pc, 0, sizeof *pc);
    pc->rows = rows;
    pc->width = (uint32_t)op->out.width;
    pc->out_col = (uint32_t)op->out.col;
    pc->out_stride = (uint32_t)p->buffers[op->out.buf].width;
    for (int i = 0; i < 6; i++)
        if (op->in[i].buf >= 0) {
            pc->in_col[i] = (uint32_t)op->in[i].col;
            pc->in_stride[i] = (uint32_t)p->buffers[op->in[i].buf].width;
            pc->flags |= 1u << i;
        }
    for (int i = 0; i < RWKV_OP_MAX_W; i++)
        if (op->w[i] >= 0)
            pc->flags |= VK_FLAG_W(i);
    if (op->accumulate)
        pc->flags |= VK_FLAG_ACCUMULATE;
    if (op->kind == RWKV_OP_MATMUL || op->kind == RWKV_OP_EMBED) {
        const struct vk_part *pt = &r->vm->w[op->w[0]].parts[part];
        pc->k = r->vm->w[op->w[0]].cols;
        pc->row0 = pt->row0;
        pc->nrows = pt->nrows;
    }
    pc->act = (uint32_t)op->act;
    pc->eps = op->eps;
    pc->heads = (uint32_t)op->heads;
    pc->head_size = (uint32_t)op->head_size;
    pc->n_seg = (uint32_t)r->chunk->n_seg;
    pc->chunk_tokens = (uint32_t)r->chunk->n_tokens;
    pc->out_base = out_base;
    const struct vk_op_kernel *ok = &r->vm->ok[o];
    if (ok->kernel == VK_K_NORMMIX)
        pc->flags = ok->mix_flags;
    if (ok->kernel == VK_K_MATMUL && ok->lerp_op[0] >= 0) { /* the absorbed LERP: a, b, out in views 1..3 */
        const struct rwkv_op *l = &p->ops[ok->lerp_op[0]];
        const struct rwkv_view v[3] = {l->in[0], l->in[1], l->out};
        for (int i = 0; i < 3; i++) {
            pc->in_col[1 + i] = (uint32_t)v[i].col;
            pc->in_stride[1 + i] = (uint32_t)p->buffers[v[i].buf].width;
        }
        pc->flags |= VK_FLAG_LERP_OUT;
    }
    int so = ok->kernel == VK_K_NORMMIX && ok->shift_op >= 0 ? ok->shift_op : o, reg = r->vs->op_region[so];
    if (reg >= 0) {
        pc->state_stride = (uint32_t)r->vs->regions[reg].floats;
        pc->state_off = (uint32_t)(p->ops[so].state_off - r->vs->regions[reg].start);
    }
}

static uint32_t ceil_div(uint32_t a, uint32_t b)
{
    return (a + b - 1) / b;
}

/* The MATMUL variant for `rows` tokens (enum vk_mm): one the op has. */
static int mm_variant(const struct vk_dev *d, const struct vk_op_kernel *ok, uint32_t rows, uint32_t nrows)
{
    if (rows == 1 && ok->mm[VK_MM_GEMV1])
        return VK_MM_GEMV1;
    if (rows <= VK_GEMV_MAX_T)
        return ok->mm[VK_MM_GEMV4] ? VK_MM_GEMV4 : VK_MM_BASIC;
    for (int v = VK_MM_CM_BIG; v > VK_MM_CM_TINY; v--) {
        const struct vk_cm_tile *t = &d->cm_tiles[v - VK_MM_CM_TINY];
        int fits = d->cm_tile ? d->cm_tile == v - VK_MM_CM_TINY + 1
                              : ceil_div(nrows, t->tn) * ceil_div(rows, t->tm) >= VK_CM_MIN_GROUPS;
        if (ok->mm[v] && fits)
            return v;
    }
    return ok->mm[VK_MM_CM_TINY] ? VK_MM_CM_TINY : VK_MM_GEMM;
}

static int mm_kernel(int variant)
{
    static const int k[VK_MM_COUNT] = {VK_K_MATMUL, VK_K_GEMV,    VK_K_GEMV,    VK_K_GEMM,
                                       VK_K_GEMM_CM, VK_K_GEMM_CM, VK_K_GEMM_CM};
    return k[variant];
}

static void group_counts(const struct vk_dev *d, const struct vk_op_kernel *ok, int kernel, int variant,
                         const struct vk_push *pc, uint32_t g[3])
{
    g[0] = g[1] = g[2] = 1;
    switch (kernel) {
    case VK_K_EMBED:
    case VK_K_SHIFT:
    case VK_K_ROWS:
        g[0] = ceil_div(pc->width, VK_WG_ROWS);
        g[1] = pc->rows;
        break;
    case VK_K_NORMMIX: g[0] = pc->rows; break;
    case VK_K_NORMMIX_ONE: g[0] = pc->rows * ok->one_split; break;
    case VK_K_MATMUL:
        /* one workgroup per block of rows walks all the chunk's token tiles: its rows come from memory
         * once per chunk and from cache for the later tiles */
        g[0] = ceil_div(pc->nrows, VK_MATMUL_ROWS);
        break;
    case VK_K_GEMV:
        g[0] = ceil_div(pc->nrows, ok->gemv_rows);
        if (d->gemv_wgs && g[0] > (uint32_t)d->gemv_wgs) /* the kernel walks the rest */
            g[0] = (uint32_t)d->gemv_wgs;
        break;
    case VK_K_GEMM: /* token tiles along x, as the shaders walk them */
        g[0] = ceil_div(pc->rows, VK_GEMM_TILE);
        g[1] = ceil_div(pc->nrows, VK_GEMM_TILE);
        break;
    case VK_K_GEMM_CM: {
        const struct vk_cm_tile *t = &d->cm_tiles[variant - VK_MM_CM_TINY];
        g[0] = ceil_div(pc->rows, t->tm);
        g[1] = ceil_div(pc->nrows, t->tn);
        break;
    }
    case VK_K_WKV4:
        g[0] = ceil_div(pc->width, VK_WG_ROWS);
        g[1] = pc->n_seg;
        break;
    case VK_K_WKV7_ROWS: g[0] = pc->n_seg * pc->heads * ok->rows_p; break; /* P per (segment, head) */
    case VK_K_GEMV_SPARSE: g[0] = ceil_div(pc->nrows, VK_SPARSE_OPW); break;
    case VK_K_WKV7_NORM: g[0] = ceil_div(pc->rows, 4) * pc->heads; break; /* per (4 tokens, head) */
    default: g[0] = pc->n_seg * pc->heads; break; /* WKV5, WKV7: a workgroup per (segment, head) */
    }
    for (int i = 0; i < 3; i++) { /* the kernels loop over what a clamped grid does not cover */
        g[i] = g[i] < 1 ? 1 : g[i];
        g[i] = g[i] > d->lim.max_groups[i] ? d->lim.max_groups[i] : g[i];
    }
}

/* Profiling: a timestamp after the dispatch, labelled by kernel and shape. */
static void prof_mark(struct recorder *r, int kernel, int o, const struct vk_push *pc)
{
    int i = vk_timer_mark(r->cb, &r->prof->timer);
    if (i < 0)
        return;
    const struct rwkv_op *op = &r->m->program.ops[o];
    if (op->kind == RWKV_OP_MATMUL)
        snprintf(r->prof->names[i], sizeof r->prof->names[i], "%-12s %ux%u", vk_kernel_name(kernel),
                 (unsigned)op->out.width, pc->k);
    else
        snprintf(r->prof->names[i], sizeof r->prof->names[i], "%-12s %s", vk_kernel_name(kernel),
                 rwkv_op_name(op->kind));
}

/* The SHIFT of a NORMMIX folded into its consumers (vk_op_kernel.mix_fused): the state gets the norm's
 * output (which the first consumer wrote) once every consumer has read the state; right after a
 * barrier. */
static void record_shift_store(struct recorder *r)
{
    const struct vk_dispatch *dp = r->pending;
    const struct vk_op_kernel *ok = &r->vm->ok[dp->op];
    int s = ok->shift_op;
    r->pending = NULL;
    struct vk_push pc;
    fill_push(r, s, 0, (uint32_t)r->chunk->n_tokens, 0, &pc);
    VkPipelineLayout layout = vk_pipeline_layout(r->d, VK_K_SHIFT);
    vkCmdBindPipeline(r->cb, VK_PIPELINE_BIND_POINT_COMPUTE, ok->shift_store);
    r->bound = ok->shift_store;
    vkCmdBindDescriptorSets(r->cb, VK_PIPELINE_BIND_POINT_COMPUTE, layout, 0, 1, &dp->set_mix, 0, NULL);
    vkCmdPushConstants(r->cb, layout, VK_SHADER_STAGE_COMPUTE_BIT, 0, sizeof pc, &pc);
    vkCmdDispatch(r->cb, ceil_div(pc.width, VK_WG_ROWS), pc.rows, 1);
    r->dispatches++;
    if (r->prof)
        prof_mark(r, VK_K_SHIFT, s, &pc);
    const struct rwkv_op *op = &r->m->program.ops[s];
    r->read |= (uint64_t)1 << op->in[0].buf;
    r->written |= (uint64_t)1 << op->out.buf;
}

/* A barrier before op `o` when it depends on (or overwrites) what earlier unsynchronised ops touched;
 * `extra` adds buffers the dispatch reads beyond the op's own (a variant absorbing other ops). A
 * pending SHIFT store goes right after a barrier (and another barrier follows where op `o` touches
 * what it does). */
static void hazard(struct recorder *r, int o, uint64_t extra)
{
    if (o == r->last_op)
        return; /* the parts of one op write disjoint columns */
    r->last_op = o;
    uint64_t rd, wr;
    group_masks(r->m, o, &rd, &wr);
    rd |= extra;
    if (((rd | wr) & r->written) || (wr & r->read) || r->d->serial) {
        barrier_now(r);
        if (r->pending && r->pending_left == 0) {
            record_shift_store(r);
            if (((rd | wr) & r->written) || (wr & r->read))
                barrier_now(r);
        }
    }
    r->read |= rd;
    r->written |= wr;
}

/* WKV7_LORA: the buffers its absorbed projections read (hidden vectors, v_first). */
static uint64_t lora_reads(const struct recorder *r, const struct vk_op_kernel *ok)
{
    const struct rwkv_program *p = &r->m->program;
    uint64_t rd = 0;
    for (int j = 0; j < 4; j++) {
        int o = ok->lora_ops[j];
        if (o < 0)
            continue;
        rd |= buf_bit(p->ops[o].in[0].buf);
        if (r->vm->ok[o].lerp_op[0] >= 0)
            rd |= buf_bit(p->ops[r->vm->ok[o].lerp_op[0]].in[1].buf);
    }
    return rd;
}

/* Parts of a tensor-core GEMM split along K: where its tiles are too few for the device and K is long
 * (RWKV_VK_KSPLIT=N forces N, 0 never), and the parts' sums fit the scratch. Not the 128 x 128 tiles
 * (8 warps, many registers: more parts only make more waves), nor 32 x 32 tiles unless very few: the
 * LoRA projections of a prefill run beside the big GEMMs of their level, and a split's barrier ends
 * that overlap (H200: -3 % at 1.5b pp512; batched generation 1.5b x 256: +16 %). */
static uint32_t ksplit_parts(const struct recorder *r, const struct vk_op_kernel *ok, const struct vk_push *pc,
                             const uint32_t g[3], int variant)
{
    const struct vk_dev *d = r->d;
    uint32_t tiles = g[0] * g[1], parts;
    if (!ok->ksum || !ok->mm_split[variant] || !r->vs->scratch.size || d->ksplit == 0)
        return 1;
    if (d->ksplit > 0)
        parts = (uint32_t)d->ksplit;
    else if (tiles >= VK_KSPLIT_TILES || variant == VK_MM_CM_BIG || (variant == VK_MM_CM_TINY && tiles >= 32))
        return 1;
    else
        parts = (VK_KSPLIT_TARGET + tiles - 1) / tiles;
    while (parts > 1 && (pc->k / parts < VK_KSPLIT_MIN_K && d->ksplit < 0))
        parts--;
    parts = parts > VK_KSPLIT_MAX ? VK_KSPLIT_MAX : parts;
    while (parts > 1 && (size_t)parts * pc->rows * pc->nrows * sizeof(float) > r->vs->scratch.size)
        parts--;
    return parts;
}

/* Whether WKV7 of a chunk with some segment longer than one token runs split over the state rows
 * (VK_K_WKV7_ROWS, then VK_K_WKV7_NORM): where the recurrence dominates (long segments) and the
 * (segment, head) pairs are too few for the device; always with RWKV_VK_WKV7_ROWS=P. */
static int wkv7_split(const struct recorder *r, const struct vk_op_kernel *ok, const struct vk_push *pc)
{
    if (!ok->rows)
        return 0;
    return r->d->wkv7_rows > 0 ||
           (pc->rows > VK_GEMV_MAX_T * pc->n_seg && pc->n_seg * pc->heads * ok->rows_p <= VK_WKV7_ROWS_GROUPS);
}

/* A second pass of op `o` over what its first dispatch wrote (same set, push constants and layout: the
 * split-K sums, the WKV7 GroupNorm after the row split): a barrier, then `pipe` (kernel `kernel`) over
 * `groups` workgroups; `scratch_read` when it reads the split-K scratch. */
static void record_second(struct recorder *r, int o, int kernel, VkPipeline pipe, uint32_t groups, int scratch_read,
                          const struct vk_push *pc)
{
    compute_barrier(r->cb);
    r->barriers++;
    uint64_t rd, wr;
    group_masks(r->m, o, &rd, &wr);
    r->read = rd;
    r->written = wr;
    r->scratch_read = scratch_read;
    vkCmdBindPipeline(r->cb, VK_PIPELINE_BIND_POINT_COMPUTE, pipe);
    r->bound = pipe;
    vkCmdDispatch(r->cb, groups < r->d->lim.max_groups[0] ? groups : r->d->lim.max_groups[0], 1, 1);
    r->dispatches++;
    if (r->prof)
        prof_mark(r, kernel, o, pc);
}

static void record(struct recorder *r, const struct vk_dispatch *dp, uint32_t rows, uint32_t out_base)
{
    const struct vk_op_kernel *ok = &r->vm->ok[dp->op];
    int one = r->chunk->n_tokens == r->chunk->n_seg; /* every segment one token */
    int lora = one && r->chunk->n_seg <= VK_LORA_MAX_SEG && !r->hooked;
    int t1 = r->chunk->n_tokens == 1 && !r->hooked;
    if (lora && ok->absorbed_by >= 0)
        return; /* the WKV7_LORA dispatch performs it */
    if (t1 && ok->mix_fused) { /* its consumers make their inputs; its SHIFT store waits (hazard) */
        r->pending = dp;
        r->pending_left = ok->mix_dispatches;
        return;
    }
    struct vk_push pc;
    fill_push(r, dp->op, dp->part, rows, out_base, &pc);
    int kernel = ok->kernel, variant = 0;
    VkPipeline pipe = ok->pipeline;
    VkDescriptorSet set = dp->set;
    uint64_t extra = 0;
    if (kernel == VK_K_MATMUL && ok->sparse && r->chunk->n_tokens == 1) { /* one token: skip zero inputs */
        kernel = VK_K_GEMV_SPARSE;
        pipe = ok->sparse;
        set = dp->set_sparse;
    } else if (kernel == VK_K_MATMUL && t1 && ok->gemv_mix) { /* its input from the NORMMIX it replaces */
        const struct rwkv_program *p = &r->m->program;
        const struct vk_op_kernel *g = &r->vm->ok[ok->mix_src];
        const struct rwkv_op *ln = &p->ops[ok->mix_src];
        kernel = VK_K_GEMV_MIX;
        variant = VK_MM_GEMV1;
        pipe = ok->gemv_mix;
        set = dp->set_mix;
        extra = (uint64_t)1 << ln->in[0].buf;
        pc.in_col[0] = (uint32_t)ln->in[0].col;
        pc.in_stride[0] = (uint32_t)p->buffers[ln->in[0].buf].width;
        pc.in_col[4] = (uint32_t)ln->out.col;
        pc.in_stride[4] = (uint32_t)p->buffers[ln->out.buf].width;
        pc.heads = (uint32_t)ok->mix_j | (g->mix_flags >> (8 + ok->mix_j) & 1u) << 8 | (uint32_t)ok->mix_xx << 16;
        pc.eps = ln->eps;
        int reg = r->vs->op_region[g->shift_op];
        pc.state_stride = (uint32_t)r->vs->regions[reg].floats;
        pc.state_off = (uint32_t)(p->ops[g->shift_op].state_off - r->vs->regions[reg].start);
    } else if (kernel == VK_K_MATMUL) {
        variant = mm_variant(r->d, ok, rows, pc.nrows);
        kernel = mm_kernel(variant);
        pipe = ok->mm[variant];
    } else if (kernel == VK_K_WKV7 && lora && ok->lora) {
        kernel = VK_K_WKV7_LORA;
        pipe = ok->lora;
        set = dp->set_lora;
        extra = lora_reads(r, ok);
    } else if (kernel == VK_K_WKV7 && one && ok->one) {
        kernel = VK_K_WKV7_ONE;
        pipe = ok->one;
    } else if (kernel == VK_K_NORMMIX && one && ok->one) {
        kernel = VK_K_NORMMIX_ONE;
        pipe = ok->one;
    } else if (kernel == VK_K_WKV7 && !one && wkv7_split(r, ok, &pc)) {
        kernel = VK_K_WKV7_ROWS;
        pipe = ok->rows;
    }
    uint32_t g[3];
    group_counts(r->d, ok, kernel, variant, &pc, g);
    if (kernel == VK_K_GEMV_MIX) { /* each workgroup makes the input once, then walks blocks of rows */
        g[0] = ceil_div(pc.nrows, ok->mix_rows);
        g[0] = g[0] < ok->mix_groups ? g[0] : ok->mix_groups;
    }
    uint32_t parts = kernel == VK_K_GEMM_CM ? ksplit_parts(r, ok, &pc, g, variant) : 1;
    if (parts > 1 && r->scratch_read) /* the scratch is still being read by an earlier sum */
        barrier_now(r);
    hazard(r, dp->op, extra);
    if (kernel == VK_K_GEMV_MIX && r->pending && ok->mix_src == r->pending->op)
        r->pending_left--;
    if (kernel == VK_K_GEMM_CM) { /* a MATMUL has no state: the field carries the parts */
        pc.state_stride = parts;
        g[2] = parts;
        if (parts > 1)
            pipe = ok->mm_split[variant];
    }
    VkPipelineLayout layout =
        vk_pipeline_layout(r->d, kernel == VK_K_WKV7_LORA || kernel == VK_K_GEMV_MIX ? kernel : ok->kernel);
    if (pipe != r->bound) {
        vkCmdBindPipeline(r->cb, VK_PIPELINE_BIND_POINT_COMPUTE, pipe);
        r->bound = pipe;
    }
    vkCmdBindDescriptorSets(r->cb, VK_PIPELINE_BIND_POINT_COMPUTE, layout, 0, 1, &set, 0, NULL);
    vkCmdPushConstants(r->cb, layout, VK_SHADER_STAGE_COMPUTE_BIT, 0, sizeof pc, &pc);
    vkCmdDispatch(r->cb, g[0], g[1], g[2]);
    r->dispatches++;
    if (r->prof)
        prof_mark(r, kernel, dp->op, &pc);
    if (parts > 1) /* the sums of the parts, once they are all written */
        record_second(r, dp->op, VK_K_KSUM, ok->ksum, ceil_div(pc.rows * pc.nrows, 256), 1, &pc);
    if (kernel == VK_K_WKV7_ROWS) { /* GroupNorm, bonus and gate in place on the raw output */
        group_counts(r->d, ok, VK_K_WKV7_NORM, 0, &pc, g);
        record_second(r, dp->op, VK_K_WKV7_NORM, ok->norm, g[0], 0, &pc);
    }
}

/* After the per-output dispatches of logits rows [r0, r0 + n): the probabilities of the rows that
 * asked for them, and the rows into the readback buffer. */
static void record_logits_tile(struct recorder *r, uint32_t n, uint32_t r0)
{
    const struct rwkv_program *p = &r->m->program;
    struct vk_state *vs = r->vs;
    uint32_t V = (uint32_t)p->buffers[p->logits_buf].width, R = (uint32_t)r->chunk->n_out;
    const struct vk_span *lg = &vs->bufs[p->logits_buf];
    if (r->chunk->any_softmax) { /* the rows that asked for probabilities (flags in the table) */
        compute_barrier(r->cb);
        r->barriers++;
        struct vk_push pc = {.rows = n, .width = V, .out_stride = V, .out_base = r0, .nrows = R,
                             .n_seg = (uint32_t)r->chunk->n_seg, .chunk_tokens = (uint32_t)r->chunk->n_tokens};
        VkPipelineLayout layout = vk_pipeline_layout(r->d, VK_K_SOFTMAX);
        vkCmdBindPipeline(r->cb, VK_PIPELINE_BIND_POINT_COMPUTE, vs->softmax);
        r->bound = vs->softmax;
        vkCmdBindDescriptorSets(r->cb, VK_PIPELINE_BIND_POINT_COMPUTE, layout, 0, 1, &vs->softmax_set, 0, NULL);
        vkCmdPushConstants(r->cb, layout, VK_SHADER_STAGE_COMPUTE_BIT, 0, sizeof pc, &pc);
        vkCmdDispatch(r->cb, n < r->d->lim.max_groups[0] ? n : r->d->lim.max_groups[0], 1, 1);
        r->dispatches++;
    }
    vk_barrier_all(r->cb);
    VkBufferCopy c = {lg->offset, (VkDeviceSize)r0 * V * sizeof(float), (VkDeviceSize)n * V * sizeof(float)};
    vkCmdCopyBuffer(r->cb, vs->act.blocks[lg->block].buffer, vs->down.blocks[0].buffer, 1, &c);
    vk_barrier_all(r->cb);
    r->read = r->written = 0;
    r->scratch_read = 0;
}

/* Everything between the tiles and the copies back is ordered by full barriers (few per chunk). */
static void record_outputs(struct recorder *r, int first_disp)
{
    struct vk_state *vs = r->vs;
    uint32_t R = (uint32_t)r->chunk->n_out;
    for (uint32_t r0 = 0; r0 < R; r0 += (uint32_t)vs->out_tile) {
        uint32_t n = R - r0 < (uint32_t)vs->out_tile ? R - r0 : (uint32_t)vs->out_tile;
        r->last_op = -1;
        for (int i = first_disp; i < vs->n_disp; i++)
            record(r, &vs->disp[i], n, r0);
        record_logits_tile(r, n, r0);
    }
}

/* The profile's totals for chunks of T tokens (NULL beyond VK_PROF_CHUNKS sizes). */
static struct vk_prof_chunk *prof_chunk(struct vk_prof *p, int T)
{
    for (int i = 0; i < p->n_chunks; i++)
        if (p->chunks[i].T == T)
            return &p->chunks[i];
    if (p->n_chunks == VK_PROF_CHUNKS)
        return NULL;
    struct vk_prof_chunk *c = &p->chunks[p->n_chunks++];
    memset(c, 0, sizeof *c);
    c->T = T;
    return c;
}

/* Records the whole chunk into `c`. */
static rwkv_status record_chunk(struct rwkv_state *s, const struct rwkv_chunk *chunk, size_t words, struct vk_cmd *c,
                                struct rwkv_error *err)
{
    const struct rwkv_model *m = s->model;
    struct vk_state *vs = s->priv;
    struct vk_dev *d = m->device->priv;
    rwkv_status st = vk_cmd_begin(d, c, err);
    if (st)
        return st;
    struct recorder r = {.m = m, .vm = (const struct vk_model *)m->backend, .vs = vs, .d = d, .chunk = chunk,
                         .cb = c->cb, .last_op = -1, .prof = d->profile == 1 ? vs->prof : NULL};
    if (vs->prof)
        vk_timer_reset(c->cb, &vs->prof->timer);
    if (!vs->table.n_blocks) { /* the table goes up by a copy */
        VkBufferCopy cp = {0, vs->chunk.offset, words * 4};
        vkCmdCopyBuffer(c->cb, vs->up.blocks[0].buffer, vs->act.blocks[vs->chunk.block].buffer, 1, &cp);
        vk_barrier_all(c->cb);
    }
    if (vs->prof)
        vk_timer_mark(c->cb, &vs->prof->timer);
    if (vk_token_applies(s, chunk)) { /* the whole step in one dispatch, its logits row in the buffer */
        vk_token_record(s, chunk, c->cb);
        r.dispatches++;
        int t = r.prof ? vk_timer_mark(c->cb, &r.prof->timer) : -1;
        if (t >= 0)
            snprintf(r.prof->names[t], sizeof r.prof->names[t], "%-12s whole step", vk_kernel_name(VK_K_TOKEN7));
        if (chunk->n_out > 0)
            record_logits_tile(&r, 1, 0);
    } else {
        int i = 0;
        for (; i < vs->n_disp && vs->disp[i].op < vs->first_out_op; i++)
            record(&r, &vs->disp[i], (uint32_t)chunk->n_tokens, 0);
        if (r.pending) { /* after the consumers of the last layer norm */
            barrier_now(&r);
            record_shift_store(&r);
        }
        if (chunk->n_out > 0) /* no logits requested: the head is skipped, as on the CPU */
            record_outputs(&r, i);
    }
    if (vs->prof && d->profile != 1) {
        vk_barrier_all(c->cb);
        vk_timer_mark(c->cb, &vs->prof->timer);
    }
    struct vk_prof_chunk *pc = vs->prof ? prof_chunk(vs->prof, chunk->n_tokens) : NULL;
    if (pc) {
        pc->barriers = r.barriers;
        pc->dispatches = r.dispatches;
    }
    return vk_cmd_end(d, c, err);
}

/* A recording of this chunk's shape, or NULL. */
static struct vk_rec *find_rec(const struct rwkv_state *s, struct vk_state *vs, const struct rwkv_chunk *c)
{
    for (int i = 0; i < VK_RECS; i++) {
        struct vk_rec *r = &vs->recs[i];
        if (r->valid && r->T == c->n_tokens && r->S == c->n_seg && r->R == c->n_out && r->soft == c->any_softmax &&
            r->token == vk_token_applies(s, c))
            return r;
    }
    return NULL;
}

/* The slot to record a new shape into: an unused one, else the least recently used. */
static struct vk_rec *free_rec(struct vk_state *vs)
{
    struct vk_rec *best = &vs->recs[0];
    for (int i = 0; i < VK_RECS; i++) {
        struct vk_rec *r = &vs->recs[i];
        if (!r->valid)
            return r;
        if (r->last_use < best->last_use)
            best = r;
    }
    return best;
}

static void prof_add(struct vk_prof *p, const char *name, int T, double ns)
{
    int i = 0;
    while (i < p->n_e && (p->e[i].T != T || strcmp(p->e[i].name, name) != 0))
        i++;
    if (i == p->n_e) {
        if (p->n_e == p->cap_e) {
            int nc = p->cap_e ? 2 * p->cap_e : 64;
            struct vk_prof_entry *ne = realloc(p->e, (size_t)nc * sizeof *ne);
            if (!ne)
                return; /* profiling is best effort */
            p->e = ne;
            p->cap_e = nc;
        }
        memset(&p->e[i], 0, sizeof p->e[i]);
        snprintf(p->e[i].name, sizeof p->e[i].name, "%s", name);
        p->e[i].T = T;
        p->n_e++;
    }
    p->e[i].ns += ns;
    p->e[i].calls++;
}

/* After a profiled run of T tokens: its times, and GPU time by label (each mark's since the previous). */
static rwkv_status prof_collect(struct vk_dev *d, struct vk_prof *p, int T, double wall_ns, double wait_ns,
                                struct rwkv_error *err)
{
    rwkv_status st = vk_timer_read(d, &p->timer, p->ns, err);
    struct vk_prof_chunk *c = prof_chunk(p, T);
    if (st || p->timer.n < 2 || !c)
        return st;
    c->runs++;
    c->wall_ns += wall_ns;
    c->wait_ns += wait_ns;
    c->gpu_ns += p->ns[p->timer.n - 1];
    for (uint32_t i = 1; d->profile == 1 && i < p->timer.n; i++)
        prof_add(p, p->names[i], T, p->ns[i] - p->ns[i - 1]);
    return RWKV_OK;
}

static int cmp_entry(const void *a, const void *b)
{
    const struct vk_prof_entry *x = a, *y = b;
    if (x->T != y->T)
        return x->T > y->T ? -1 : 1;
    return x->ns < y->ns ? 1 : x->ns > y->ns ? -1 : 0;
}

static void prof_print(const struct rwkv_state *s, struct vk_prof *p)
{
    qsort(p->e, (size_t)p->n_e, sizeof *p->e, cmp_entry);
    for (int k = 0; k < p->n_chunks; k++) {
        const struct vk_prof_chunk *c = &p->chunks[k];
        if (c->runs == 0)
            continue;
        double runs = (double)c->runs;
        fprintf(stderr, "rwkv: vulkan profile, chunks of %d tokens (state of %d tokens x %d slots): %ld runs; per run: "
                "wall %.1f us, GPU %.1f us (first to last timestamp), wall - GPU %.1f us, host work (wall - fence "
                "wait) %.1f us, of which copying logits out %.1f us; %d dispatches, %d barriers\n", c->T,
                s->token_chunk_size, s->num_batch, c->runs, c->wall_ns / runs / 1e3, c->gpu_ns / runs / 1e3,
                (c->wall_ns - c->gpu_ns) / runs / 1e3, (c->wall_ns - c->wait_ns) / runs / 1e3, c->copy_ns / runs / 1e3,
                c->dispatches, c->barriers);
        for (int i = 0; i < p->n_e; i++)
            if (p->e[i].T == c->T)
                fprintf(stderr, "rwkv:   %-40s %7.1f calls %9.1f us/run %8.2f us/call %5.1f%%\n", p->e[i].name,
                        (double)p->e[i].calls / runs, p->e[i].ns / runs / 1e3,
                        p->e[i].ns / (double)p->e[i].calls / 1e3, 100.0 * p->e[i].ns / c->gpu_ns);
    }
}

struct sched_key {
    int level, pos;
};

static int cmp_sched(const void *a, const void *b)
{
    const struct sched_key *x = a, *y = b;
    return x->level != y->level ? (x->level > y->level) - (x->level < y->level) : (x->pos > y->pos) - (x->pos < y->pos);
}

/* Orders the per-token dispatches by dependency level (1 + the deepest earlier op that wrote what an op
 * touches, or touched what it writes), program order within a level: independent ops then share the
 * stretch between two barriers. The program interleaves them (v7: each LoRA's down projection, then its
 * up projection), which would cost a barrier per pair. The per-output dispatches keep their order. */
static rwkv_status schedule(struct rwkv_state *s, struct rwkv_error *err)
{
    struct vk_state *vs = s->priv;
    int n = 0;
    while (n < vs->n_disp && vs->disp[n].op < vs->first_out_op)
        n++;
    int n_ops = s->model->program.n_ops;
    int *level = calloc((size_t)n_ops + 1, sizeof *level);
    uint64_t *rd = calloc((size_t)n_ops + 1, sizeof *rd), *wr = calloc((size_t)n_ops + 1, sizeof *wr);
    struct sched_key *key = calloc((size_t)n + 1, sizeof *key);
    struct vk_dispatch *copy = calloc((size_t)n + 1, sizeof *copy);
    rwkv_status st = RWKV_OK;
    if (!level || !rd || !wr || !key || !copy) {
        st = rwkv_fail(err, RWKV_ERR_NOMEM, "out of memory");
        goto done;
    }
    int prev = -1;
    for (int i = 0; i < n; i++) {
        int o = vs->disp[i].op;
        if (o != prev) { /* an op's parts are consecutive */
            group_masks(s->model, o, &rd[o], &wr[o]);
            for (int j = 0; j < i; j++) {
                int e = vs->disp[j].op;
                if (((wr[e] & (rd[o] | wr[o])) || (rd[e] & wr[o])) && level[e] + 1 > level[o])
                    level[o] = level[e] + 1;
            }
            prev = o;
        }
        key[i] = (struct sched_key){level[o], i};
        copy[i] = vs->disp[i];
    }
    qsort(key, (size_t)n, sizeof *key, cmp_sched);
    for (int i = 0; i < n; i++)
        vs->disp[i] = copy[key[i].pos];
done:
    free(level);
    free(rd);
    free(wr);
    free(key);
    free(copy);
    return st;
}

rwkv_status vk_exec_init(struct rwkv_state *s, struct rwkv_error *err)
{
    struct vk_state *vs = s->priv;
    struct vk_dev *d = s->model->device->priv;
    const struct rwkv_program *prog = &s->model->program;
    const struct vk_model *vm = (const struct vk_model *)s->model->backend;
    /* for chunks with hooks: the dispatches as built (program order), and which HOOK ops a fused
     * dispatch passes over (absorbed into a group: group_end -1) */
    vs->prog = malloc(((size_t)vs->n_disp + 1) * sizeof *vs->prog);
    vs->hook_inside = calloc((size_t)prog->n_ops + 1, 1);
    if (!vs->prog || !vs->hook_inside)
        return rwkv_fail(err, RWKV_ERR_NOMEM, "out of memory");
    memcpy(vs->prog, vs->disp, (size_t)vs->n_disp * sizeof *vs->prog);
    for (int o = 0; o < prog->n_ops; o++)
        vs->hook_inside[o] = prog->ops[o].kind == RWKV_OP_HOOK && vm->ok[o].group_end < 0;
    rwkv_status st = schedule(s, err);
    if (st || !d->profile)
        return st;
    struct vk_prof *p = vs->prof = calloc(1, sizeof *p);
    uint32_t cap = 2 * (uint32_t)vs->n_disp + 16;
    if (!p || !(p->names = calloc(cap, sizeof *p->names)) || !(p->ns = calloc(cap, sizeof *p->ns)))
        return rwkv_fail(err, RWKV_ERR_NOMEM, "out of memory");
    return vk_timer_init(d, &p->timer, cap, err);
}

void vk_exec_free(struct rwkv_state *s)
{
    struct vk_state *vs = s->priv;
    struct vk_dev *d = s->model->device->priv;
    for (int i = 0; i < VK_RECS; i++)
        vk_cmd_free(d, &vs->recs[i].cmd);
    vk_cmd_free(d, &vs->hook_cmd);
    vk_pool_free(d, &vs->hook_stage);
    free(vs->hook_copy);
    free(vs->prog);
    free(vs->hook_inside);
    vs->hook_copy = NULL;
    vs->prog = NULL;
    vs->hook_inside = NULL;
    if (vs->copy_pool)
        rwkv_pool_free(vs->copy_pool);
    vs->copy_pool = NULL;
    struct vk_prof *p = vs->prof;
    vk_token_prof_print(s);
    if (p) {
        prof_print(s, p);
        vk_timer_free(d, &p->timer);
        free(p->names);
        free(p->ns);
        free(p->e);
        free(p);
        vs->prof = NULL;
    }
}

/* ---- chunks with hooks ----
 * A chunk for which some hook matches a HOOK op runs in pieces: the dispatches in program order up to
 * that op, the hooked tensor's rows copied to the host, the hooks called on them, the rows copied back
 * where a hook changed them, and on (per-output points once per tile of logits rows). The one-token
 * WKV7 then absorbs no LoRA projection, so that the hooks between them see their outputs. A point that
 * a fused dispatch passes over (the layer norm before the token shift and mixes: att.ln, ffn.ln) can
 * be read, but changing it is an error: the rest of its group ran in the same kernel. */

/* Host memory for the largest view of a hooked op in chunks like this one (grown before a run: a
 * recorded copy may still refer to the staging buffer). */
static rwkv_status hook_buffers(const struct rwkv_state *s, struct vk_dev *d, struct vk_state *vs,
                                const struct rwkv_chunk *chunk, struct rwkv_error *err)
{
    const struct rwkv_program *p = &s->model->program;
    size_t bytes = 0;
    for (int o = 0; o < p->n_ops; o++) {
        const struct rwkv_op *op = &p->ops[o];
        if (op->kind != RWKV_OP_HOOK || !rwkv_hooks_match(s, op))
            continue;
        const struct rwkv_buffer_desc *b = &p->buffers[op->in[0].buf];
        size_t rows = b->per_output ? (size_t)vs->out_tile : (size_t)chunk->n_tokens;
        size_t need = rows * (size_t)b->width * sizeof(float);
        bytes = need > bytes ? need : bytes;
    }
    if (bytes <= vs->hook_bytes)
        return RWKV_OK;
    vk_pool_free(d, &vs->hook_stage);
    free(vs->hook_copy);
    vs->hook_bytes = 0;
    if (!(vs->hook_copy = malloc(bytes)))
        return rwkv_fail(err, RWKV_ERR_NOMEM, "out of memory for %zu bytes of hooked rows", bytes);
    rwkv_status st = vk_staging_new(d, &vs->hook_stage, bytes, err);
    if (!st)
        vs->hook_bytes = bytes;
    return st;
}

/* At HOOK op `o`, after what the recorder holds: runs it, calls the hooks on the op's view (`rows` rows
 * of slots `row_slot`), puts the rows back if changed, and begins the next piece. */
static rwkv_status hook_stop(struct recorder *r, struct rwkv_state *s, int o, uint32_t rows, const int32_t *row_slot,
                             struct rwkv_error *err)
{
    const struct rwkv_op *op = &r->m->program.ops[o];
    struct vk_state *vs = r->vs;
    struct rwkv_view v = op->in[0];
    size_t stride = (size_t)r->m->program.buffers[v.buf].width, bytes = rows * stride * sizeof(float);
    const struct vk_span *b = &vs->bufs[v.buf];
    rwkv_status st = RWKV_OK;
    if (!bytes)
        return st;
    VkBuffer dev = vs->act.blocks[b->block].buffer, host = vs->hook_stage.blocks[0].buffer;
    vk_barrier_all(r->cb);
    VkBufferCopy down = {b->offset, 0, bytes}, up = {0, b->offset, bytes};
    vkCmdCopyBuffer(r->cb, dev, host, 1, &down);
    if ((st = vk_cmd_submit(r->d, &vs->hook_cmd, err)))
        return st;
    float *data = vs->hook_stage.blocks[0].mapped;
    memcpy(vs->hook_copy, data, bytes);
    if (rwkv_hooks_call(s, op, data + v.col, rows, (size_t)v.width, stride, row_slot))
        return rwkv_fail(err, RWKV_ERR_ARG, "run stopped by a hook at %s (layer %d)", op->hook, op->layer);
    int changed = memcmp(vs->hook_copy, data, bytes) != 0;
    if (changed && vs->hook_inside[o])
        return rwkv_fail(err, RWKV_ERR_UNSUPPORTED, "a hook changed %s (layer %d), which the vulkan backend "
                         "computes in one kernel with the ops after it: change a later point (such as the mix) "
                         "or use the cpu backend", op->hook, op->layer);
    if ((st = vk_cmd_begin(r->d, &vs->hook_cmd, err)))
        return st;
    if (changed) {
        vkCmdCopyBuffer(r->cb, host, dev, 1, &up);
        vk_barrier_all(r->cb);
    }
    r->bound = VK_NULL_HANDLE;
    r->last_op = -1;
    r->read = r->written = 0;
    r->scratch_read = 0;
    return RWKV_OK;
}

/* Ops [o0, o1) in program order, their dispatches from vs->prog[*i] on (`rows` rows from logits row
 * `out_base`), stopping at each HOOK op that a hook matches (its rows of slots `row_slot`). */
static rwkv_status record_hooked_ops(struct recorder *r, struct rwkv_state *s, int o0, int o1, int *i, uint32_t rows,
                                     uint32_t out_base, const int32_t *row_slot, struct rwkv_error *err)
{
    const struct rwkv_program *p = &s->model->program;
    struct vk_state *vs = r->vs;
    rwkv_status st = RWKV_OK;
    for (int o = o0; o < o1 && !st; o++) {
        for (; *i < vs->n_disp && vs->prog[*i].op == o; (*i)++)
            record(r, &vs->prog[*i], rows, out_base);
        if (p->ops[o].kind == RWKV_OP_HOOK && rwkv_hooks_match(s, &p->ops[o]))
            st = hook_stop(r, s, o, rows, row_slot, err);
    }
    return st;
}

/* Whether some hook of the state matches a HOOK op that this chunk runs. */
static int chunk_hooked(const struct rwkv_state *s, const struct vk_state *vs, const struct rwkv_chunk *chunk)
{
    const struct rwkv_program *p = &s->model->program;
    int end = chunk->n_out > 0 ? p->n_ops : vs->first_out_op;
    for (int o = 0; s->n_hooks && o < end; o++)
        if (p->ops[o].kind == RWKV_OP_HOOK && rwkv_hooks_match(s, &p->ops[o]))
            return 1;
    return 0;
}

static rwkv_status run_hooked(struct rwkv_state *s, const struct rwkv_chunk *chunk, size_t words,
                              struct rwkv_error *err)
{
    const struct rwkv_model *m = s->model;
    const struct rwkv_program *p = &m->program;
    struct vk_state *vs = s->priv;
    struct vk_dev *d = m->device->priv;
    rwkv_status st = vs->hook_cmd.pool ? RWKV_OK : vk_cmd_init(d, &vs->hook_cmd, err);
    if (st || (st = hook_buffers(s, d, vs, chunk, err)) || (st = vk_cmd_begin(d, &vs->hook_cmd, err)))
        return st;
    struct recorder r = {.m = m, .vm = (const struct vk_model *)m->backend, .vs = vs, .d = d, .chunk = chunk,
                         .cb = vs->hook_cmd.cb, .last_op = -1, .hooked = 1};
    if (!vs->table.n_blocks) { /* the table goes up by a copy */
        VkBufferCopy cp = {0, vs->chunk.offset, words * 4};
        vkCmdCopyBuffer(r.cb, vs->up.blocks[0].buffer, vs->act.blocks[vs->chunk.block].buffer, 1, &cp);
        vk_barrier_all(r.cb);
    }
    int i = 0;
    st = record_hooked_ops(&r, s, 0, vs->first_out_op, &i, (uint32_t)chunk->n_tokens, 0, chunk->token_slot, err);
    uint32_t R = (uint32_t)chunk->n_out;
    for (uint32_t r0 = 0; r0 < R && !st; r0 += (uint32_t)vs->out_tile) {
        uint32_t n = R - r0 < (uint32_t)vs->out_tile ? R - r0 : (uint32_t)vs->out_tile;
        r.last_op = -1;
        int j = i; /* each tile runs the per-output ops again */
        st = record_hooked_ops(&r, s, vs->first_out_op, p->n_ops, &j, n, r0, chunk->out_slot + r0, err);
        if (!st)
            record_logits_tile(&r, n, r0);
    }
    /* after a stop or an error hook_stop leaves no piece recording */
    return st ? st : vk_cmd_submit(d, &vs->hook_cmd, err);
}

/* The logits rows from the readback buffer into the caller's rows; thread `index` of `count` takes
 * its share of the rows (a large batch reads back tens of MB: one thread copies ~5-10 GB/s). */
struct rows_copy {
    float *const *rows;
    const float *down;
    size_t V;
    int n;
};

static void copy_rows(void *ctx, int index, int count)
{
    const struct rows_copy *c = ctx;
    int k0 = (int)((long)c->n * index / count), k1 = (int)((long)c->n * (index + 1) / count);
    for (int k = k0; k < k1; k++)
        if (c->rows[k] != c->down + (size_t)k * c->V) /* else the caller reads the readback buffer itself */
            memcpy(c->rows[k], c->down + (size_t)k * c->V, c->V * sizeof(float));
}

rwkv_status vk_run(struct rwkv_state *s, const struct rwkv_chunk *chunk, float *const *rows, struct rwkv_error *err)
{
    const struct rwkv_model *m = s->model;
    struct vk_state *vs = s->priv;
    struct vk_dev *d = m->device->priv;
    double t0 = vs->prof ? rwkv_time_seconds() : 0;
    void *table = vs->table.n_blocks ? vk_span_host(&vs->table, vs->chunk) : vk_span_host(&vs->up, (struct vk_span){0, 0, 0});
    size_t words = write_chunk_table(table, chunk);
    int hooked = chunk_hooked(s, vs, chunk);
    struct vk_rec *rec = d->profile == 1 || hooked ? NULL : find_rec(s, vs, chunk);
    rwkv_status st = RWKV_OK;
    double wait = 0;
    if (hooked) {
        if ((st = run_hooked(s, chunk, words, err)))
            return st;
    } else if (!rec) {
        rec = free_rec(vs);
        rec->valid = 0;
        if (!rec->cmd.pool) {
            if ((st = vk_cmd_init(d, &rec->cmd, err)))
                return st;
            rec->cmd.reusable = 1;
        }
        if ((st = record_chunk(s, chunk, words, &rec->cmd, err)))
            return st;
        rec->token = vk_token_applies(s, chunk);
        rec->T = chunk->n_tokens;
        rec->S = chunk->n_seg;
        rec->R = chunk->n_out;
        rec->soft = chunk->any_softmax;
        rec->valid = 1;
    }
    if (!hooked) {
        rec->last_use = ++vs->uses;
        if (rec->token)
            vk_token_arm(s);
        if (!(st = vk_cmd_start(d, &rec->cmd, err))) {
            double w0 = rwkv_time_seconds();
            st = vk_cmd_wait(d, &rec->cmd, err);
            wait = rwkv_time_seconds() - w0;
            s->stats.wait_seconds += wait;
        }
        if (!st && rec->token) {
            st = vk_token_check(s, err);
            s->stats.single_dispatch_runs += !st;
        }
        if (st) {
            rec->valid = 0;
            return st;
        }
    }
    const struct rwkv_program *p = &m->program;
    struct rows_copy rc = {rows, vs->down.blocks[0].mapped, (size_t)p->buffers[p->logits_buf].width, chunk->n_out};
    /* a destination inside the readback rows but not at its own row (rwkv_state_logits_area used
     * out of order): the rows go through a copy first, so that none is overwritten before it is read */
    float *moved = NULL;
    size_t row_bytes = rc.V * sizeof(float), copied = 0; /* bytes of the rows not read in place */
    uintptr_t lo = (uintptr_t)rc.down, hi = lo + (size_t)s->token_chunk_size * row_bytes;
    for (int k = 0; k < chunk->n_out; k++) {
        uintptr_t at = (uintptr_t)rows[k];
        if (at == lo + (size_t)k * row_bytes)
            continue;
        copied += row_bytes;
        if (!moved && at + row_bytes > lo && at < hi) {
            if (!(moved = malloc((size_t)chunk->n_out * row_bytes)))
                return rwkv_fail(err, RWKV_ERR_NOMEM, "out of memory copying %d logits rows", chunk->n_out);
            memcpy(moved, rc.down, (size_t)chunk->n_out * row_bytes);
        }
    }
    if (moved) {
        rc.down = moved;
        copied = (size_t)chunk->n_out * row_bytes;
    }
    struct rwkv_error pool_err; /* the threads are optional: without them one thread copies */
    if (copied >= VK_COPY_PARALLEL_BYTES && !vs->copy_pool && !vs->copy_pool_failed &&
        rwkv_pool_new(rwkv_cpu_count() < 8 ? rwkv_cpu_count() : 8, &vs->copy_pool, &pool_err))
        vs->copy_pool_failed = 1;
    double c0 = vs->prof ? rwkv_time_seconds() : 0;
    if (vs->copy_pool && copied >= VK_COPY_PARALLEL_BYTES)
        rwkv_pool_run(vs->copy_pool, copy_rows, &rc);
    else if (copied)
        copy_rows(&rc, 0, 1);
    free(moved);
    if (vs->prof && !hooked) { /* a chunk run in pieces has no timestamps */
        struct vk_prof_chunk *pc = prof_chunk(vs->prof, chunk->n_tokens);
        if (pc)
            pc->copy_ns += 1e9 * (rwkv_time_seconds() - c0);
        st = prof_collect(d, vs->prof, chunk->n_tokens, 1e9 * (rwkv_time_seconds() - t0), 1e9 * wait, err);
    }
    return st;
}
