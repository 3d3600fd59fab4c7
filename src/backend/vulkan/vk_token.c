/* A whole RWKV-7 generation step of one sequence in one dispatch (token7.comp), an option.
 *
 * The per-op path runs a v7 layer as 7 dependent stages of dispatches, each costing 4-6 us of launch
 * and barrier on an H100/H200 (PERF.md), against a few microseconds of weights per layer at 0.1b-1.5b.
 * token7.comp instead runs the step in G workgroups, one per multiprocessor, with grid barriers
 * between its 5 phases per layer. On an H200 it was slower than the per-op path at every size
 * (PERF.md, session 4), so it is off unless RWKV_VK_PERSISTENT=G (or =sm: the multiprocessor count,
 * VK_NV_shader_sm_builtins) asks for it. It is used for chunks of one token of one sequence
 * (n_tokens == n_seg == 1, at most one logits row) when:
 *   - the device has dynamic indexing of buffer arrays and subgroup shuffles (a CPU device: G = 1,
 *     since it runs workgroups one after another);
 *   - the model is v7 with 64-wide heads, F16 matrices each in one part, in at most
 *     VK_TOKEN_MODEL_BLOCKS blocks (VK_TOKEN_MODEL_BLOCKS_BIG where the device binds 64+ buffers per
 *     stage), and its sizes fit the kernel's shared memory;
 *   - the state's chunk table is in host-written device memory (the barrier's words live there too:
 *     the host zeroes them before each run and reads the abort word after).
 * Everything else (hooks, batches, prompts) runs by ops as before. Co-residency of the workgroups
 * is not promised by Vulkan: a barrier that waits too long aborts the step, which then fails with
 * RWKV_ERR_DEVICE, and the device stops using this kernel. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/vulkan/vk_internal.h"
#include "core/error.h"

/* The table's layout: token7.comp's constants (keep in sync). */
enum { H_LAYERS, H_VOCAB, H_LN_EPS, H_GN_EPS, HEADER = 8 };
enum {
    T_EMB, T_LN0W, T_LN0B, T_LNOW, T_LNOB, T_HEAD, T_X, T_XXA, T_XXF, T_R, T_K, T_V, T_HID, T_Y, T_KF, T_VF,
    T_LOGITS, NG
};
enum {
    L_LN1W, L_LN1B, L_MIX, L_WR = 8, L_WK, L_WV, L_W1, L_A1, L_G1, L_V1, L_W2, L_A2, L_G2, L_V2, L_W0, L_A0, L_V0,
    L_KK, L_KA, L_RK, L_LNXW, L_LNXB, L_WO, L_LN2W, L_LN2B, L_FXK, L_FKEY, L_FVAL, L_SATT, L_SWKV, L_SFFN,
    L_REFS, L_STRIDE = 72, L_HAS_V = 75, LW = 76
};
#define WG 256
#define HEAD 64
#define STAGE_MAX 8192 /* floats of input staged at a time (token7.comp's KC) */
#define TOKEN_SYNC_BYTES 64 /* token7.comp's SyncBuf: counter, abort word, 12 profile words */

static size_t gword(int i)
{
    return HEADER + 2 * (size_t)i;
}

static size_t lword(int l, int i)
{
    return HEADER + 2 * (size_t)NG + (size_t)l * LW + 2 * (size_t)i;
}

/* The scratch vectors of the state's span, in floats from its start: each on 16 bytes. */
struct scratch_plan {
    size_t at[NG];
    size_t floats;
};

static void plan_scratch(const struct rwkv_model_info *in, uint32_t hid, struct scratch_plan *p)
{
    memset(p, 0, sizeof *p);
    size_t C = (size_t)in->n_embd, width[NG] = {0};
    width[T_X] = width[T_XXA] = width[T_XXF] = width[T_R] = width[T_K] = width[T_V] = width[T_Y] = width[T_VF] = C;
    width[T_HID] = hid;
    width[T_KF] = (size_t)in->n_ffn;
    for (int i = 0; i < NG; i++)
        if (width[i]) {
            p->at[i] = p->floats;
            p->floats += (width[i] + 3) / 4 * 4;
        }
}

/* ---- the model ---- */

struct finder {
    const struct rwkv_model *m;
    const struct vk_model *vm;
    uint32_t *w;
    const char *why;
    char name[160];
};

static int weight_index(const struct rwkv_model *m, int layer, const char *name)
{
    char full[160];
    if (layer >= 0)
        snprintf(full, sizeof full, "blocks.%d.%s", layer, name);
    else
        snprintf(full, sizeof full, "%s", name);
    for (int i = 0; i < m->n_weights; i++)
        if (strcmp(m->weights[i].name, full) == 0)
            return i;
    return -1;
}

/* Writes the reference of weight `name` (of `layer`, or global with -1) to words [at, at + 2): an F16
 * matrix of rows x cols in one part (16-byte units), or an F32 vector of at least `rows` floats (cols
 * 0). Returns 0 (with f->why set) when it is absent or otherwise. */
static int ref(struct finder *f, size_t at, int layer, const char *name, uint32_t rows, uint32_t cols)
{
    int i = weight_index(f->m, layer, name);
    const struct vk_tensor *t = i >= 0 ? &f->vm->w[i] : NULL;
    snprintf(f->name, sizeof f->name, "%s%s", layer >= 0 ? "blocks.L." : "", name);
    if (!t || t->n_parts != 1) {
        f->why = !t ? "a weight is missing" : "a matrix is split into parts";
        return 0;
    }
    const struct vk_part *p = &t->parts[0];
    if (cols) {
        if (t->dtype != RWKV_DTYPE_F16 || t->cols != cols || p->nrows != rows || p->row0 != 0 || p->span.offset % 16) {
            f->why = "a matrix is not F16 of the expected shape";
            return 0;
        }
        f->w[at + 1] = (uint32_t)(p->span.offset / 16);
    } else {
        if (t->dtype != RWKV_DTYPE_F32 || p->span.size < (VkDeviceSize)rows * 4 || p->span.offset % 4) {
            f->why = "a vector is not F32 of the expected size";
            return 0;
        }
        f->w[at + 1] = (uint32_t)(p->span.offset / 4);
    }
    f->w[at] = (uint32_t)p->span.block;
    return 1;
}

/* Rows of layer 1's (else 0's) LoRA matrix `name` ([D][C]), or 0 where absent. */
static uint32_t lora_dim(const struct rwkv_model *m, const struct vk_model *vm, int layer, const char *name)
{
    int i = weight_index(m, layer, name);
    if (i < 0 || vm->w[i].n_parts != 1)
        return 0;
    return vm->w[i].parts[0].nrows;
}

static float op_eps(const struct rwkv_program *p, enum rwkv_op_kind kind)
{
    for (int o = 0; o < p->n_ops; o++)
        if (p->ops[o].kind == kind)
            return p->ops[o].eps;
    return 0;
}

static uint32_t bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

/* The table; the pipeline belongs to the device's list. */
void vk_token_model_free(struct vk_model *vm)
{
    free(vm->token.words);
    memset(&vm->token, 0, sizeof vm->token);
}

static int model_refs(struct finder *f, uint32_t DV)
{
    const struct rwkv_model_info *in = &f->m->info;
    uint32_t C = (uint32_t)in->n_embd, F = (uint32_t)in->n_ffn, V = (uint32_t)in->n_vocab;
    uint32_t DW = lora_dim(f->m, f->vm, 0, "att.w1"), DA = lora_dim(f->m, f->vm, 0, "att.a1");
    uint32_t DG = lora_dim(f->m, f->vm, 0, "att.g1");
    int ok = ref(f, gword(T_EMB), -1, "emb.weight", V, C) && ref(f, gword(T_LN0W), -1, "blocks.0.ln0.weight", C, 0) &&
             ref(f, gword(T_LN0B), -1, "blocks.0.ln0.bias", C, 0) && ref(f, gword(T_LNOW), -1, "ln_out.weight", C, 0) &&
             ref(f, gword(T_LNOB), -1, "ln_out.bias", C, 0) && ref(f, gword(T_HEAD), -1, "head.weight", V, C);
    static const char *const mix[6] = {"att.x_r", "att.x_w", "att.x_k", "att.x_v", "att.x_a", "att.x_g"};
    for (int l = 0; ok && l < in->n_layer; l++) {
        int has_v = l > 0;
        ok = ref(f, lword(l, L_LN1W), l, "ln1.weight", C, 0) && ref(f, lword(l, L_LN1B), l, "ln1.bias", C, 0);
        for (int j = 0; ok && j < 6; j++)
            ok = ref(f, lword(l, L_MIX + j), l, mix[j], C, 0);
        ok = ok && ref(f, lword(l, L_WR), l, "att.receptance.weight", C, C) &&
             ref(f, lword(l, L_WK), l, "att.key.weight", C, C) && ref(f, lword(l, L_WV), l, "att.value.weight", C, C) &&
             ref(f, lword(l, L_W1), l, "att.w1", DW, C) && ref(f, lword(l, L_A1), l, "att.a1", DA, C) &&
             ref(f, lword(l, L_G1), l, "att.g1", DG, C) && ref(f, lword(l, L_W2), l, "att.w2", C, DW) &&
             ref(f, lword(l, L_A2), l, "att.a2", C, DA) && ref(f, lword(l, L_G2), l, "att.g2", C, DG) &&
             ref(f, lword(l, L_W0), l, "att.w0", C, 0) && ref(f, lword(l, L_A0), l, "att.a0", C, 0) &&
             ref(f, lword(l, L_KK), l, "att.k_k", C, 0) && ref(f, lword(l, L_KA), l, "att.k_a", C, 0) &&
             ref(f, lword(l, L_RK), l, "att.r_k", C, 0) && ref(f, lword(l, L_LNXW), l, "att.ln_x.weight", C, 0) &&
             ref(f, lword(l, L_LNXB), l, "att.ln_x.bias", C, 0) &&
             ref(f, lword(l, L_WO), l, "att.output.weight", C, C) &&
             ref(f, lword(l, L_LN2W), l, "ln2.weight", C, 0) && ref(f, lword(l, L_LN2B), l, "ln2.bias", C, 0) &&
             ref(f, lword(l, L_FXK), l, "ffn.x_k", C, 0) && ref(f, lword(l, L_FKEY), l, "ffn.key.weight", F, C) &&
             ref(f, lword(l, L_FVAL), l, "ffn.value.weight", C, F);
        if (ok && has_v)
            ok = ref(f, lword(l, L_V1), l, "att.v1", DV, C) && ref(f, lword(l, L_V2), l, "att.v2", C, DV) &&
                 ref(f, lword(l, L_V0), l, "att.v0", C, 0);
        f->w[lword(l, 0) + L_HAS_V] = (uint32_t)has_v;
    }
    return ok;
}

rwkv_status vk_token_model_init(const struct rwkv_model *m, struct vk_model *vm, struct rwkv_error *err)
{
    struct vk_dev *d = m->device->priv;
    const struct rwkv_model_info *in = &m->info;
    memset(&vm->token, 0, sizeof vm->token);
    if (d->token_groups <= 0 || !vk_kernel_available(d, VK_K_TOKEN7, RWKV_DTYPE_F16) ||
        in->arch != RWKV_ARCH_V7 || in->head_size != HEAD || (int64_t)in->n_head * HEAD != in->n_embd ||
        in->n_ffn % 8 || in->n_layer < 1 || vm->pool.n_blocks > d->token_blocks ||
        (uint64_t)in->n_vocab * (uint64_t)d->token_groups >= ((uint64_t)1 << 32))
        return RWKV_OK;
    uint32_t C = (uint32_t)in->n_embd, F = (uint32_t)in->n_ffn;
    uint32_t DW = lora_dim(m, vm, 0, "att.w1"), DA = lora_dim(m, vm, 0, "att.a1"), DG = lora_dim(m, vm, 0, "att.g1");
    uint32_t DV = in->n_layer > 1 ? lora_dim(m, vm, 1, "att.v1") : 0;
    if (!DW || !DA || !DG || DW % 8 || DA % 8 || DG % 8 || DV % 8 || (in->n_layer > 1 && !DV))
        return RWKV_OK;
    /* shared memory: the staged input, the LoRA hidden vectors, WKV's vectors, the reductions */
    size_t cf = C > F ? C : F, kc = cf < STAGE_MAX ? cf : STAGE_MAX;
    size_t shared = kc * 4 + (size_t)(DW + DA + DG + DV) * 4 + 5 * HEAD * 4 + 3 * HEAD * 4 + WG * 12 + 16;
    if (shared > d->lim.max_shared || (F > STAGE_MAX && F % 8))
        return RWKV_OK;
    size_t n = HEADER + 2 * (size_t)NG + (size_t)in->n_layer * LW;
    uint32_t *w = calloc(n, sizeof *w);
    if (!w)
        return rwkv_fail(err, RWKV_ERR_NOMEM, "out of memory");
    struct finder f = {m, vm, w, NULL, ""};
    if (!model_refs(&f, DV)) {
        if (m->device->options.verbose)
            fprintf(stderr, "rwkv: vulkan: one-dispatch generation not used: %s (%s)\n", f.why, f.name);
        free(w);
        return RWKV_OK;
    }
    w[H_LAYERS] = (uint32_t)in->n_layer;
    w[H_VOCAB] = (uint32_t)in->n_vocab;
    w[H_LN_EPS] = bits(op_eps(&m->program, RWKV_OP_LAYERNORM));
    w[H_GN_EPS] = bits(op_eps(&m->program, RWKV_OP_WKV7));
    uint32_t spec[VK_SPEC] = {WG, C, DW, DA, DG, DV, F};
    rwkv_status st = vk_pipeline_get(d, VK_K_TOKEN7, RWKV_DTYPE_F16, spec, &vm->token.pipeline, err);
    if (st) {
        free(w);
        vm->token.pipeline = VK_NULL_HANDLE;
        return st;
    }
    vm->token.words = w;
    vm->token.n_words = n;
    if (d->pipe_stats) { /* RWKV_VK_PIPELINE_STATS=1: registers, spills, shared memory */
        char stats[512];
        vk_pipeline_stats(d, vm->token.pipeline, stats, sizeof stats);
        fprintf(stderr, "rwkv: vulkan: token7 pipeline (C %u, F %u): %s\n", C, F, stats);
    }
    return RWKV_OK;
}

/* ---- the state ---- */

static uint32_t hidden_floats(const struct rwkv_model *m, const struct vk_model *vm)
{
    uint32_t h = lora_dim(m, vm, 0, "att.w1") + lora_dim(m, vm, 0, "att.a1") + lora_dim(m, vm, 0, "att.g1");
    return h + (m->info.n_layer > 1 ? lora_dim(m, vm, 1, "att.v1") : 0);
}

rwkv_status vk_token_reserve(const struct rwkv_state *s, struct vk_state *vs, struct rwkv_error *err)
{
    const struct vk_model *vm = (const struct vk_model *)s->model->backend;
    if (!vm->token.pipeline || !vs->table.n_blocks) /* the chunk table is not in host-written memory */
        return RWKV_OK;
    struct scratch_plan sp;
    plan_scratch(&s->model->info, hidden_floats(s->model, vm), &sp);
    rwkv_status st = vk_pool_reserve(&vs->act, vm->token.n_words * 4, &vs->token_tab, "one-dispatch step table", err);
    if (!st)
        st = vk_pool_reserve(&vs->act, sp.floats * 4, &vs->token_scratch, "one-dispatch step vectors", err);
    if (!st)
        st = vk_pool_reserve(&vs->table, TOKEN_SYNC_BYTES, &vs->token_sync, "one-dispatch step barrier", err);
    return st;
}

/* The program's SHIFT (attention, FFN) and WKV7 ops of layer l. */
static int state_ops(const struct rwkv_program *p, int l, int ops[3])
{
    int n_shift = 0;
    ops[0] = ops[1] = ops[2] = -1;
    for (int o = 0; o < p->n_ops; o++) {
        if (p->ops[o].layer != l)
            continue;
        if (p->ops[o].kind == RWKV_OP_SHIFT && n_shift < 2)
            ops[n_shift++ == 0 ? 0 : 2] = o;
        else if (p->ops[o].kind == RWKV_OP_WKV7)
            ops[1] = o;
    }
    return ops[0] >= 0 && ops[1] >= 0 && ops[2] >= 0;
}

/* The table with the state's references (scratch, logits, state ranges). */
static int state_words(const struct rwkv_state *s, const struct vk_state *vs, uint32_t *w)
{
    const struct rwkv_model *m = s->model;
    const struct vk_model *vm = (const struct vk_model *)m->backend;
    const struct rwkv_program *p = &m->program;
    memcpy(w, vm->token.words, vm->token.n_words * 4);
    struct scratch_plan sp;
    plan_scratch(&m->info, hidden_floats(m, vm), &sp);
    for (int i = T_X; i < T_LOGITS; i++) {
        w[gword(i)] = (uint32_t)vs->token_scratch.block;
        w[gword(i) + 1] = (uint32_t)(vs->token_scratch.offset / 4 + sp.at[i]);
    }
    const struct vk_span *lg = &vs->bufs[p->logits_buf];
    w[gword(T_LOGITS)] = (uint32_t)lg->block;
    w[gword(T_LOGITS) + 1] = (uint32_t)(lg->offset / 4);
    for (int l = 0; l < m->info.n_layer; l++) {
        int ops[3];
        if (!state_ops(p, l, ops))
            return 0;
        for (int k = 0; k < 3; k++) {
            int r = vs->op_region[ops[k]];
            if (r < 0)
                return 0;
            const struct vk_region *rg = &vs->regions[r];
            w[lword(l, L_SATT + k)] = (uint32_t)rg->span.block;
            w[lword(l, L_SATT + k) + 1] = (uint32_t)(rg->span.offset / 4 + (p->ops[ops[k]].state_off - rg->start));
            w[lword(l, 0) + L_STRIDE + k] = (uint32_t)rg->floats;
        }
    }
    return 1;
}

static rwkv_status upload_table(struct rwkv_state *s, const uint32_t *w, size_t n, struct rwkv_error *err)
{
    struct vk_state *vs = s->priv;
    struct vk_dev *d = s->model->device->priv;
    struct vk_pool stage;
    rwkv_status st = vk_staging_new(d, &stage, n * 4, err);
    if (!st) {
        memcpy(stage.blocks[0].mapped, w, n * 4);
        st = vk_cmd_begin(d, &vs->cmd, err);
    }
    if (!st) {
        VkBufferCopy c = {0, vs->token_tab.offset, n * 4};
        vkCmdCopyBuffer(vs->cmd.cb, stage.blocks[0].buffer, vs->act.blocks[vs->token_tab.block].buffer, 1, &c);
        st = vk_cmd_submit(d, &vs->cmd, err);
    }
    vk_pool_free(d, &stage);
    return st;
}

static rwkv_status make_set(struct vk_dev *d, const struct vk_model *vm, struct vk_state *vs, struct rwkv_error *err)
{
    VkDescriptorPoolSize ps = {VK_DESCRIPTOR_TYPE_STORAGE_BUFFER, (uint32_t)d->token_blocks + VK_TOKEN_ACT_BLOCKS + 3};
    VkDescriptorPoolCreateInfo pi = {.sType = VK_STRUCTURE_TYPE_DESCRIPTOR_POOL_CREATE_INFO, .maxSets = 1,
                                     .poolSizeCount = 1, .pPoolSizes = &ps};
    VkResult r = vkCreateDescriptorPool(d->device, &pi, NULL, &vs->token_pool);
    if (r != VK_SUCCESS) {
        vs->token_pool = VK_NULL_HANDLE;
        return vk_fail(d, r, err, "vkCreateDescriptorPool");
    }
    VkDescriptorSetLayout layout = vk_set_layout(d, VK_K_TOKEN7);
    VkDescriptorSetAllocateInfo ai = {.sType = VK_STRUCTURE_TYPE_DESCRIPTOR_SET_ALLOCATE_INFO,
                                      .descriptorPool = vs->token_pool, .descriptorSetCount = 1,
                                      .pSetLayouts = &layout};
    VkDescriptorSet set;
    if ((r = vkAllocateDescriptorSets(d->device, &ai, &set)) != VK_SUCCESS)
        return vk_fail(d, r, err, "vkAllocateDescriptorSets");
    VkDescriptorBufferInfo model[VK_TOKEN_MODEL_BLOCKS_BIG], act[VK_TOKEN_ACT_BLOCKS], one[3];
    for (int i = 0; i < d->token_blocks; i++)
        model[i] = (VkDescriptorBufferInfo){i < vm->pool.n_blocks ? vm->pool.blocks[i].buffer : d->dummy, 0,
                                            VK_WHOLE_SIZE};
    for (int i = 0; i < VK_TOKEN_ACT_BLOCKS; i++)
        act[i] = (VkDescriptorBufferInfo){i < vs->act.n_blocks ? vs->act.blocks[i].buffer : d->dummy, 0, VK_WHOLE_SIZE};
    one[0] = vk_span_info(&vs->act, vs->token_tab);
    one[1] = vk_span_info(vk_table_pool(vs), vs->chunk);
    one[2] = vk_span_info(&vs->table, vs->token_sync);
    VkWriteDescriptorSet wr[5];
    const VkDescriptorBufferInfo *info[5] = {model, act, &one[0], &one[1], &one[2]};
    uint32_t count[5] = {(uint32_t)d->token_blocks, VK_TOKEN_ACT_BLOCKS, 1, 1, 1};
    for (uint32_t i = 0; i < 5; i++)
        wr[i] = (VkWriteDescriptorSet){.sType = VK_STRUCTURE_TYPE_WRITE_DESCRIPTOR_SET, .dstSet = set, .dstBinding = i,
                                       .descriptorCount = count[i], .descriptorType = VK_DESCRIPTOR_TYPE_STORAGE_BUFFER,
                                       .pBufferInfo = info[i]};
    vkUpdateDescriptorSets(d->device, 5, wr, 0, NULL);
    vs->token_set = set;
    return RWKV_OK;
}

rwkv_status vk_token_state_init(struct rwkv_state *s, struct rwkv_error *err)
{
    struct vk_state *vs = s->priv;
    struct vk_dev *d = s->model->device->priv;
    const struct vk_model *vm = (const struct vk_model *)s->model->backend;
    if (!vs->token_tab.size || vs->act.n_blocks > VK_TOKEN_ACT_BLOCKS)
        return RWKV_OK;
    uint32_t *w = malloc(vm->token.n_words * 4);
    if (!w)
        return rwkv_fail(err, RWKV_ERR_NOMEM, "out of memory");
    rwkv_status st = RWKV_OK;
    if (state_words(s, vs, w)) {
        st = upload_table(s, w, vm->token.n_words, err);
        if (!st)
            st = make_set(d, vm, vs, err);
    }
    free(w);
    return st;
}

void vk_token_state_free(struct vk_dev *d, struct vk_state *vs)
{
    if (vs->token_pool)
        vkDestroyDescriptorPool(d->device, vs->token_pool, NULL);
    vs->token_pool = VK_NULL_HANDLE;
    vs->token_set = VK_NULL_HANDLE;
}

/* ---- running ---- */

int vk_token_applies(const struct rwkv_state *s, const struct rwkv_chunk *c)
{
    const struct vk_state *vs = s->priv;
    const struct vk_dev *d = s->model->device->priv;
    return vs->token_set && d->token_groups > 0 && c->n_tokens == 1 && c->n_seg == 1 && c->n_out <= 1;
}

void vk_token_record(const struct rwkv_state *s, const struct rwkv_chunk *c, VkCommandBuffer cb)
{
    const struct vk_state *vs = s->priv;
    struct vk_dev *d = s->model->device->priv;
    const struct vk_model *vm = (const struct vk_model *)s->model->backend;
    struct vk_push pc = {.rows = (uint32_t)c->n_out, .n_seg = 1, .chunk_tokens = 1};
    VkPipelineLayout layout = vk_pipeline_layout(d, VK_K_TOKEN7);
    vkCmdBindPipeline(cb, VK_PIPELINE_BIND_POINT_COMPUTE, vm->token.pipeline);
    vkCmdBindDescriptorSets(cb, VK_PIPELINE_BIND_POINT_COMPUTE, layout, 0, 1, &vs->token_set, 0, NULL);
    vkCmdPushConstants(cb, layout, VK_SHADER_STAGE_COMPUTE_BIT, 0, sizeof pc, &pc);
    vkCmdDispatch(cb, (uint32_t)d->token_groups, 1, 1);
}

void vk_token_arm(struct rwkv_state *s)
{
    struct vk_state *vs = s->priv;
    memset(vk_span_host(&vs->table, vs->token_sync), 0, TOKEN_SYNC_BYTES);
}

rwkv_status vk_token_check(struct rwkv_state *s, struct rwkv_error *err)
{
    struct vk_state *vs = s->priv;
    struct vk_dev *d = s->model->device->priv;
    const volatile uint32_t *sync = vk_span_host(&vs->table, vs->token_sync);
    if (!sync[1]) {
        if (d->token_clock) {
            for (int i = 0; i < 12; i++)
                vs->token_prof[i] += sync[2 + i];
            vs->token_runs++;
        }
        return RWKV_OK;
    }
    int groups = d->token_groups;
    d->token_groups = 0; /* from now on by ops, on this device */
    return rwkv_fail(err, RWKV_ERR_DEVICE,
                     "vulkan: the one-dispatch generation step gave up waiting at a grid barrier (its %d workgroups "
                     "did not all run at once); the step's state and logits are not valid. Later steps run by ops "
                     "(RWKV_VK_PERSISTENT=0 does that from the start)", groups);
}

void vk_token_prof_print(const struct rwkv_state *s)
{
    const struct vk_state *vs = s->priv;
    if (!vs->token_runs)
        return;
    static const char *const kind[6] = {"A (LN1, mixes, r k v, LoRA down)", "W (LoRA up, WKV7, GroupNorm)",
                                        "O (x += W_o y)", "K (LN2, mix, FFN key)", "V (x += FFN value)",
                                        "head (LN out, logits)"};
    double n = (double)vs->token_runs, total = 0;
    for (int i = 0; i < 12; i++)
        total += vs->token_prof[i];
    fprintf(stderr, "rwkv: vulkan one-dispatch step, %ld runs: workgroup 0 %.1f us per run (device clock)\n",
            vs->token_runs, total / n / 1e3);
    for (int k = 0; k < 6; k++)
        fprintf(stderr, "rwkv:   %-36s working %8.1f us, then waiting at the barrier %8.1f us per run\n", kind[k],
                vs->token_prof[2 * k] / n / 1e3, vs->token_prof[2 * k + 1] / n / 1e3);
}
