/* Running one chunk: the chunk table goes up, the program's ops are recorded as dispatches (one per
 * weight part) with barriers only where an op touches a buffer an earlier unsynchronised op wrote (or
 * writes one it read), the per-output ops run per tile of logits rows, and only the requested rows
 * come back. One submission per chunk; the descriptor sets were written at state creation. */
#include <string.h>

#include "backend/vulkan/vk_internal.h"
#include "core/error.h"

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
    for (int r = 0; r < c->n_out; r++)
        w[off_out + (uint32_t)r] = (uint32_t)c->out_rows[r];
    return off_out + (size_t)c->n_out;
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

/* A barrier before op `o` when it depends on (or overwrites) what earlier unsynchronised ops touched. */
static void hazard(struct recorder *r, int o)
{
    if (o == r->last_op)
        return; /* the parts of one op write disjoint columns */
    r->last_op = o;
    uint64_t rd, wr;
    op_masks(&r->m->program.ops[o], &rd, &wr);
    if (((rd | wr) & r->written) || (wr & r->read)) {
        compute_barrier(r->cb);
        r->read = r->written = 0;
    }
    r->read |= rd;
    r->written |= wr;
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
    pc->out_base = out_base;
    int reg = r->vs->op_region[o];
    if (reg >= 0) {
        pc->state_stride = (uint32_t)r->vs->regions[reg].floats;
        pc->state_off = (uint32_t)(op->state_off - r->vs->regions[reg].start);
    }
}

static uint32_t ceil_div(uint32_t a, uint32_t b)
{
    return (a + b - 1) / b;
}

static void group_counts(const struct vk_dev *d, int kernel, const struct vk_push *pc, uint32_t g[3])
{
    g[0] = g[1] = g[2] = 1;
    switch (kernel) {
    case VK_K_EMBED:
    case VK_K_SHIFT:
    case VK_K_ROWS:
        g[0] = ceil_div(pc->width, VK_WG_ROWS);
        g[1] = pc->rows;
        break;
    case VK_K_LAYERNORM: g[0] = pc->rows; break;
    case VK_K_MATMUL:
        /* one workgroup per block of rows walks all the chunk's token tiles: its rows come from memory
         * once per chunk and from cache for the later tiles */
        g[0] = ceil_div(pc->nrows, VK_MATMUL_ROWS);
        break;
    case VK_K_WKV4:
        g[0] = ceil_div(pc->width, VK_WG_ROWS);
        g[1] = pc->n_seg;
        break;
    default: g[0] = pc->n_seg * pc->heads; break; /* WKV5, WKV7: a workgroup per (segment, head) */
    }
    for (int i = 0; i < 3; i++) { /* the kernels loop over what a clamped grid does not cover */
        g[i] = g[i] < 1 ? 1 : g[i];
        g[i] = g[i] > d->lim.max_groups[i] ? d->lim.max_groups[i] : g[i];
    }
}

static void record(struct recorder *r, const struct vk_dispatch *dp, uint32_t rows, uint32_t out_base)
{
    const struct vk_op_kernel *ok = &r->vm->ok[dp->op];
    hazard(r, dp->op);
    struct vk_push pc;
    fill_push(r, dp->op, dp->part, rows, out_base, &pc);
    uint32_t g[3];
    group_counts(r->d, ok->kernel, &pc, g);
    VkPipelineLayout layout = vk_pipeline_layout(r->d, ok->kernel);
    if (ok->pipeline != r->bound) {
        vkCmdBindPipeline(r->cb, VK_PIPELINE_BIND_POINT_COMPUTE, ok->pipeline);
        r->bound = ok->pipeline;
    }
    vkCmdBindDescriptorSets(r->cb, VK_PIPELINE_BIND_POINT_COMPUTE, layout, 0, 1, &dp->set, 0, NULL);
    vkCmdPushConstants(r->cb, layout, VK_SHADER_STAGE_COMPUTE_BIT, 0, sizeof pc, &pc);
    vkCmdDispatch(r->cb, g[0], g[1], g[2]);
}

/* Everything between the tiles and the copies back is ordered by full barriers (few per chunk). */
static void record_outputs(struct recorder *r, int first_disp)
{
    const struct rwkv_program *p = &r->m->program;
    struct vk_state *vs = r->vs;
    uint32_t V = (uint32_t)p->buffers[p->logits_buf].width, R = (uint32_t)r->chunk->n_out;
    const struct vk_span *lg = &vs->bufs[p->logits_buf];
    for (uint32_t r0 = 0; r0 < R; r0 += (uint32_t)vs->out_tile) {
        uint32_t n = R - r0 < (uint32_t)vs->out_tile ? R - r0 : (uint32_t)vs->out_tile;
        r->last_op = -1;
        for (int i = first_disp; i < vs->n_disp; i++)
            record(r, &vs->disp[i], n, r0);
        vk_barrier_all(r->cb);
        VkBufferCopy c = {lg->offset, (VkDeviceSize)r0 * V * sizeof(float), (VkDeviceSize)n * V * sizeof(float)};
        vkCmdCopyBuffer(r->cb, vs->act.blocks[lg->block].buffer, vs->down.blocks[0].buffer, 1, &c);
        vk_barrier_all(r->cb);
        r->read = r->written = 0;
    }
}

rwkv_status vk_run(struct rwkv_state *s, const struct rwkv_chunk *chunk, float *const *rows, struct rwkv_error *err)
{
    const struct rwkv_model *m = s->model;
    struct vk_state *vs = s->priv;
    struct vk_dev *d = m->device->priv;
    size_t words = write_chunk_table(vk_span_host(&vs->up, (struct vk_span){0, 0, 0}), chunk);
    rwkv_status st = vk_cmd_begin(d, &vs->cmd, err);
    if (st)
        return st;
    struct recorder r = {m, (const struct vk_model *)m->backend, vs, d, chunk, vs->cmd.cb, VK_NULL_HANDLE, -1, 0, 0};
    VkBufferCopy c = {0, vs->chunk.offset, words * 4};
    vkCmdCopyBuffer(vs->cmd.cb, vs->up.blocks[0].buffer, vs->act.blocks[vs->chunk.block].buffer, 1, &c);
    vk_barrier_all(vs->cmd.cb);
    int i = 0;
    for (; i < vs->n_disp && vs->disp[i].op < vs->first_out_op; i++)
        record(&r, &vs->disp[i], (uint32_t)chunk->n_tokens, 0);
    if (chunk->n_out > 0) /* no logits requested: the head is skipped, as on the CPU */
        record_outputs(&r, i);
    if ((st = vk_cmd_submit(d, &vs->cmd, err)))
        return st;
    const struct rwkv_program *p = &m->program;
    size_t V = (size_t)p->buffers[p->logits_buf].width;
    const float *down = vs->down.blocks[0].mapped;
    for (int k = 0; k < chunk->n_out; k++)
        memcpy(rows[k], down + (size_t)k * V, V * sizeof(float));
    return RWKV_OK;
}
