/* rwkv-vk-gemm: the tensor-core GEMM kernel (gemm_cm.comp) alone, for tuning its tiles. For each
 * shape (tokens M, output rows N, input width K) and tile: GPU time per dispatch (best of several,
 * timestamps around each), TFLOP/s (2 M N K per dispatch) and the largest error of sampled outputs
 * against a double-precision sum on the host, relative to sum |x w| of that output.
 *
 *   rwkv-vk-gemm [--shape M,N,K]... [--tile TM,TN,WM,WN,TK]... [--fp16] [--reps N]
 *
 * Defaults: the prefill shapes of the synthetic 1.5b and 7.2b models at 512 tokens, and batch 256,
 * with the backend's tiles. Built with the Vulkan backend; links its internals. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/vulkan/vk_internal.h"
#include "core/error.h"
#include "core/platform.h"
#include "rwkv.h"

static int quiet; /* warming up: no lines */

struct shape {
    uint32_t m, n, k;
};

struct bufs {
    struct vk_pool pool;
    struct vk_span y, x, w, dummy;
};

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static float frand(void) /* uniform in [-1, 1) */
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (float)((rng_state >> 40) * (1.0 / 8388608.0)) - 1.0f;
}

/* Host data to a span (through a staging buffer) or back. */
static rwkv_status transfer(struct vk_dev *d, struct bufs *b, struct vk_span s, void *host, int up,
                            struct rwkv_error *err)
{
    struct vk_pool stg;
    struct vk_cmd cmd = {0};
    rwkv_status st = vk_staging_new(d, &stg, s.size, err);
    if (!st && up)
        memcpy(stg.blocks[0].mapped, host, s.size);
    if (!st)
        st = vk_cmd_init(d, &cmd, err);
    if (!st)
        st = vk_cmd_begin(d, &cmd, err);
    if (!st) {
        VkBufferCopy c = {up ? 0 : s.offset, up ? s.offset : 0, s.size};
        VkBuffer dev = b->pool.blocks[s.block].buffer, host_buf = stg.blocks[0].buffer;
        vkCmdCopyBuffer(cmd.cb, up ? host_buf : dev, up ? dev : host_buf, 1, &c);
        st = vk_cmd_submit(d, &cmd, err);
    }
    if (!st && !up)
        memcpy(host, stg.blocks[0].mapped, s.size);
    vk_cmd_free(d, &cmd);
    vk_pool_free(d, &stg);
    return st;
}

/* One shape with one tile: prints a line. */
static rwkv_status run_one(struct vk_dev *d, struct bufs *b, const struct shape *sh, const struct vk_cm_tile *t,
                           uint32_t mode, int reps, const float *x, const uint16_t *w, float *y,
                           struct rwkv_error *err)
{
    uint32_t split = mode & 1u, spec[VK_SPEC] = {32 * t->wm * t->wn, t->tm, t->tn, t->wm, t->wn, mode, t->tk};
    size_t shared = vk_cm_shared_bytes(t, (int)split);
    char name[64];
    snprintf(name, sizeof name, "%u,%u,%u,%u,%u", t->tm, t->tn, t->wm, t->wn, t->tk);
    if (shared > d->lim.max_shared || spec[0] > d->lim.max_wg) {
        if (!quiet)
            printf("%-8s %5u x %5u x %5u  %-20s needs %zu B of shared memory (device: %u): skipped\n",
               split ? "split" : "fp16", sh->m, sh->n, sh->k, name, shared, d->lim.max_shared);
        return RWKV_OK;
    }
    VkPipeline pipe;
    rwkv_status st = vk_pipeline_get(d, VK_K_GEMM_CM, RWKV_DTYPE_F16, spec, &pipe, err);
    if (st)
        return st;
    VkDescriptorPool dpool = VK_NULL_HANDLE;
    VkDescriptorSet set;
    int nb = vk_kernel_bindings(VK_K_GEMM_CM);
    VkDescriptorPoolSize ps = {VK_DESCRIPTOR_TYPE_STORAGE_BUFFER, (uint32_t)nb};
    VkDescriptorPoolCreateInfo pi = {.sType = VK_STRUCTURE_TYPE_DESCRIPTOR_POOL_CREATE_INFO, .maxSets = 1,
                                     .poolSizeCount = 1, .pPoolSizes = &ps};
    VkDescriptorSetLayout layout = vk_set_layout(d, VK_K_GEMM_CM);
    VkDescriptorSetAllocateInfo ai = {.sType = VK_STRUCTURE_TYPE_DESCRIPTOR_SET_ALLOCATE_INFO,
                                      .descriptorSetCount = 1, .pSetLayouts = &layout};
    VkResult r = vkCreateDescriptorPool(d->device, &pi, NULL, &dpool);
    if (r == VK_SUCCESS) {
        ai.descriptorPool = dpool;
        r = vkAllocateDescriptorSets(d->device, &ai, &set);
    }
    if (r != VK_SUCCESS) {
        if (dpool)
            vkDestroyDescriptorPool(d->device, dpool, NULL);
        return vk_fail(d, r, err, "gemm bench descriptor set");
    }
    VkDescriptorBufferInfo info[VK_MAX_BINDINGS];
    for (int i = 0; i < nb; i++)
        info[i] = vk_span_info(&b->pool, b->dummy);
    struct vk_span ys = b->y, xs = b->x, ws = b->w;
    ys.size = (VkDeviceSize)sh->m * sh->n * 4;
    xs.size = (VkDeviceSize)sh->m * sh->k * 4;
    ws.size = (VkDeviceSize)sh->n * sh->k * 2;
    info[0] = vk_span_info(&b->pool, ys);
    info[1] = vk_span_info(&b->pool, xs);
    info[2] = vk_span_info(&b->pool, ws);
    VkWriteDescriptorSet wr = {.sType = VK_STRUCTURE_TYPE_WRITE_DESCRIPTOR_SET, .dstSet = set,
                               .descriptorCount = (uint32_t)nb, .descriptorType = VK_DESCRIPTOR_TYPE_STORAGE_BUFFER,
                               .pBufferInfo = info};
    vkUpdateDescriptorSets(d->device, 1, &wr, 0, NULL);

    struct vk_push pc = {.rows = sh->m, .width = sh->n, .out_stride = sh->n, .k = sh->k, .nrows = sh->n,
                         .flags = 1u | VK_FLAG_W(0)};
    pc.in_stride[0] = sh->k;
    uint32_t g[3] = {(sh->m + t->tm - 1) / t->tm, (sh->n + t->tn - 1) / t->tn, 1};
    struct vk_cmd cmd = {0};
    struct vk_timer timer = {0};
    double best = 1e30, ns[65];
    reps = reps > 64 ? 64 : reps;
    if (!st)
        st = vk_cmd_init(d, &cmd, err);
    if (!st)
        st = vk_timer_init(d, &timer, (uint32_t)reps + 1, err);
    /* rounds for at least 0.4 s (an idle GPU lowers its clocks between configurations: the first
     * 0.2 s only warm it up), best dispatch of the later rounds */
    double start = rwkv_time_seconds();
    for (int round = 0; !st && (round < 3 || rwkv_time_seconds() - start < 0.4); round++) {
        int counted = rwkv_time_seconds() - start >= 0.2 || quiet;
        if ((st = vk_cmd_begin(d, &cmd, err)))
            break;
        vk_timer_reset(cmd.cb, &timer);
        VkPipelineLayout pl = vk_pipeline_layout(d, VK_K_GEMM_CM);
        vkCmdBindPipeline(cmd.cb, VK_PIPELINE_BIND_POINT_COMPUTE, pipe);
        vkCmdBindDescriptorSets(cmd.cb, VK_PIPELINE_BIND_POINT_COMPUTE, pl, 0, 1, &set, 0, NULL);
        vkCmdPushConstants(cmd.cb, pl, VK_SHADER_STAGE_COMPUTE_BIT, 0, sizeof pc, &pc);
        vk_barrier_all(cmd.cb);
        vk_timer_mark(cmd.cb, &timer);
        for (int i = 0; i < reps; i++) {
            vkCmdDispatch(cmd.cb, g[0], g[1], g[2]);
            vk_barrier_all(cmd.cb);
            vk_timer_mark(cmd.cb, &timer);
        }
        if ((st = vk_cmd_submit(d, &cmd, err)) || (st = vk_timer_read(d, &timer, ns, err)))
            break;
        for (int i = 0; i < reps && counted; i++)
            if (ns[i + 1] - ns[i] > 0 && ns[i + 1] - ns[i] < best)
                best = ns[i + 1] - ns[i];
    }
    vk_timer_free(d, &timer);
    vk_cmd_free(d, &cmd);
    vkDestroyDescriptorPool(d->device, dpool, NULL);
    if (!st)
        st = transfer(d, b, ys, y, 0, err);
    if (st)
        return st;
    /* sampled outputs against double sums */
    double worst = 0;
    for (int i = 0; i < 512; i++) {
        uint32_t tok = (uint32_t)((i * 2654435761u) % sh->m);
        uint32_t row = (uint32_t)((i * 40503u + 7u * (uint32_t)i * (uint32_t)i) % sh->n);
        double sum = 0, mag = 0;
        for (uint32_t c = 0; c < sh->k; c++) {
            double p = (double)x[(size_t)tok * sh->k + c] * rwkv_f16_to_f32(w[(size_t)row * sh->k + c]);
            sum += p;
            mag += fabs(p);
        }
        double e = fabs(y[(size_t)tok * sh->n + row] - sum) / (mag > 0 ? mag : 1);
        worst = e > worst ? e : worst;
    }
    double flops = 2.0 * sh->m * sh->n * sh->k;
    if (!quiet)
        {
        char stats[512];
        vk_pipeline_stats(d, pipe, stats, sizeof stats);
        printf("%-8s %5u x %5u x %5u  %-20s %9.1f us %7.1f TFLOP/s  err %.1e  (%u groups)%s%s\n",
               split ? "split" : "fp16", sh->m, sh->n, sh->k, name, best / 1e3, flops / best / 1e3, worst,
               g[0] * g[1], stats[0] ? "  " : "", stats);
    }
    fflush(stdout);
    return RWKV_OK;
}

static int parse_shape(const char *s, struct shape *o)
{
    int used = 0;
    return sscanf(s, "%u,%u,%u%n", &o->m, &o->n, &o->k, &used) == 3 && !s[used] && o->m && o->n && o->k &&
           o->k % 8 == 0 && o->m <= 4096 && o->n <= 65536 && o->k <= 65536;
}

int main(int argc, char **argv)
{
    struct shape shapes[32];
    struct vk_cm_tile tiles[64];
    int n_shapes = 0, n_tiles = 0, reps = 10;
    uint32_t mode = 1;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--shape") && i + 1 < argc && n_shapes < 32) {
            if (!parse_shape(argv[++i], &shapes[n_shapes++])) {
                fprintf(stderr, "rwkv-vk-gemm: bad --shape %s (M,N,K with K %% 8 == 0)\n", argv[i]);
                return 2;
            }
        } else if (!strcmp(argv[i], "--tile") && i + 1 < argc && n_tiles < 64) {
            if (!vk_cm_tile_parse(argv[++i], &tiles[n_tiles++])) {
                fprintf(stderr, "rwkv-vk-gemm: bad --tile %s (TM,TN,WM,WN,TK)\n", argv[i]);
                return 2;
            }
        } else if (!strcmp(argv[i], "--fp16")) {
            mode &= ~1u;
        } else if (!strcmp(argv[i], "--reps") && i + 1 < argc) {
            reps = atoi(argv[++i]);
            reps = reps < 1 ? 1 : reps;
        } else {
            fprintf(stderr, "usage: rwkv-vk-gemm [--shape M,N,K]... [--tile TM,TN,WM,WN,TK]... [--fp16] "
                            "[--reps N]\n");
            return 2;
        }
    }
    if (!n_shapes) {
        static const struct shape def[] = {{512, 2048, 2048}, {512, 8192, 2048}, {512, 2048, 8192},
                                           {512, 4096, 4096}, {512, 16384, 4096}, {512, 4096, 16384},
                                           {256, 2048, 2048}, {256, 8192, 2048}};
        n_shapes = (int)(sizeof def / sizeof def[0]);
        memcpy(shapes, def, sizeof def);
    }
    struct rwkv_device_options o = rwkv_device_default_options();
    o.backend = RWKV_BACKEND_VULKAN;
    struct rwkv_device *dev = NULL;
    struct rwkv_error err;
    if (rwkv_device_open(&o, &dev, &err)) {
        fprintf(stderr, "rwkv-vk-gemm: %s\n", err.message);
        return 1;
    }
    struct vk_dev *d = dev->priv;
    printf("%s\n", rwkv_device_description(dev));
    if (!n_tiles) {
        memcpy(tiles, d->cm_tiles, sizeof d->cm_tiles);
        n_tiles = 3;
    }
    if (d->feat.coopmat == VK_COOPMAT_OFF) {
        fprintf(stderr, "rwkv-vk-gemm: the device has no usable cooperative matrices\n");
        rwkv_device_free(dev);
        return 1;
    }
    uint32_t mm = 0, mn = 0, mk = 0;
    for (int i = 0; i < n_shapes; i++) {
        mm = shapes[i].m > mm ? shapes[i].m : mm;
        mn = shapes[i].n > mn ? shapes[i].n : mn;
        mk = shapes[i].k > mk ? shapes[i].k : mk;
    }
    size_t nx = (size_t)mm * mk, nw = (size_t)mn * mk, ny = (size_t)mm * mn;
    float *x = malloc(nx * 4), *y = malloc(ny * 4);
    uint16_t *w = malloc(nw * 2);
    struct bufs b;
    vk_pool_init(&b.pool, d->lim.split_bytes, d->lim.align);
    rwkv_status st = x && y && w ? RWKV_OK : rwkv_fail(&err, RWKV_ERR_NOMEM, "out of memory");
    if (!st)
        st = vk_pool_reserve(&b.pool, ny * 4, &b.y, "y", &err);
    if (!st)
        st = vk_pool_reserve(&b.pool, nx * 4, &b.x, "x", &err);
    if (!st)
        st = vk_pool_reserve(&b.pool, nw * 2, &b.w, "w", &err);
    if (!st)
        st = vk_pool_reserve(&b.pool, 256, &b.dummy, "dummy", &err);
    if (!st)
        st = vk_pool_commit(d, &b.pool, VK_BUFFER_USAGE_STORAGE_BUFFER_BIT | VK_BUFFER_USAGE_TRANSFER_SRC_BIT |
                            VK_BUFFER_USAGE_TRANSFER_DST_BIT, VK_MEM_DEVICE, &err);
    for (size_t i = 0; !st && i < nx; i++)
        x[i] = frand();
    for (size_t i = 0; !st && i < nw; i++)
        w[i] = rwkv_f32_to_f16(0.05f * frand());
    /* uploaded per shape: x rows of K floats, W rows of K halfs, packed for each shape's K */
    for (int s = 0; !st && s < n_shapes; s++) {
        struct vk_span xs = b.x, ws = b.w;
        xs.size = (VkDeviceSize)shapes[s].m * shapes[s].k * 4;
        ws.size = (VkDeviceSize)shapes[s].n * shapes[s].k * 2;
        if ((st = transfer(d, &b, xs, x, 1, &err)) || (st = transfer(d, &b, ws, w, 1, &err)))
            break;
        /* an idle GPU takes a while to raise its clocks: the first shape's first tile runs for 1 s first */
        quiet = 1;
        for (double t0 = rwkv_time_seconds(); !st && s == 0 && rwkv_time_seconds() - t0 < 1.0;)
            st = run_one(d, &b, &shapes[s], &tiles[0], mode, 64, x, w, y, &err);
        quiet = 0;
        for (int m = 0; m < 2 && !st; m++) { /* split, then fp16 */
            uint32_t md = m == 0 ? mode : (mode & ~1u);
            if (m == 1 && !(mode & 1u))
                break;
            for (int t = 0; t < n_tiles && !st; t++)
                st = run_one(d, &b, &shapes[s], &tiles[t], md, reps, x, w, y, &err);
        }
    }
    if (st)
        fprintf(stderr, "rwkv-vk-gemm: %s\n", err.message);
    vk_pool_free(d, &b.pool);
    free(x);
    free(y);
    free(w);
    rwkv_device_free(dev);
    return st ? 1 : 0;
}
