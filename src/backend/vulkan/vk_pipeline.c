/* Kernels, their SPIR-V variants (embedded at build time by shaders.cmake), descriptor set layouts,
 * compute pipelines specialised per model, and the pipeline cache on disk.
 *
 * The cache lives in $XDG_CACHE_HOME/rwkv-c (or ~/.cache/rwkv-c), one file per vendor, device, driver
 * version and pipelineCacheUUID; it is skipped silently when it cannot be read or written, and with
 * env RWKV_VK_NO_PIPELINE_CACHE=1. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backend/vulkan/vk_internal.h"
#include "core/error.h"
#include "rwkv_spirv.h"

/* Bindings: out, inputs, weights, state, chunk table (see vk_internal.h). */
const struct vk_kernel_desc vk_kernels[VK_K_COUNT] = {
    [VK_K_EMBED] = {0, 1, 0, 1},
    [VK_K_NORMMIX] = {8, 1, 1, 1}, /* out xx; in x, sx, six outputs; params */
    [VK_K_NORMMIX_ONE] = {8, 1, 1, 1},
    [VK_K_SHIFT] = {1, 0, 1, 1},
    [VK_K_ROWS] = {3, 1, 0, 1},
    [VK_K_MATMUL] = {1, 2, 0, 0, 4},
    [VK_K_GEMV] = {1, 2, 0, 0, 4},
    [VK_K_GEMM] = {1, 2, 0, 0, 4},
    [VK_K_GEMM_CM] = {1, 2, 0, 0, 4},
    [VK_K_KSUM] = {1, 2, 0, 0, 4},
    [VK_K_WKV4] = {3, 2, 1, 1},
    [VK_K_WKV5] = {5, 4, 1, 1},
    [VK_K_WKV7] = {6, 5, 1, 1},
    [VK_K_WKV7_ONE] = {6, 5, 1, 1},
    [VK_K_WKV7_LORA] = {6, 5, 1, 1, 12},
    [VK_K_WKV7_ROWS] = {6, 5, 1, 1},
    [VK_K_WKV7_NORM] = {6, 5, 1, 1},
    [VK_K_COPY] = {1, 0, 0, 0},
    [VK_K_SOFTMAX] = {0, 0, 0, 1},
    [VK_K_GEMV_SPARSE] = {1, 2, 0, 0, 4},
    [VK_K_GEMV_MIX] = {1, 2, 0, 0, 8}, /* the MATMUL's, then 8 params, 9 state, 10 chunk, 11 xx */
    [VK_K_TOKEN7] = {0, 0, 0, 0}, /* its own layout (token_layout_init) */
};

static const char *const kernel_names[VK_K_COUNT] = {
    [VK_K_EMBED] = "embed",     [VK_K_NORMMIX] = "normmix", [VK_K_NORMMIX_ONE] = "normmix-one",
    [VK_K_SHIFT] = "shift",     [VK_K_ROWS] = "rows",       [VK_K_MATMUL] = "matmul",
    [VK_K_GEMV] = "gemv",       [VK_K_GEMM] = "gemm",       [VK_K_GEMM_CM] = "gemm-coopmat",
    [VK_K_KSUM] = "ksum",       [VK_K_WKV4] = "wkv4",       [VK_K_WKV5] = "wkv5",
    [VK_K_WKV7] = "wkv7",       [VK_K_WKV7_ONE] = "wkv7-one", [VK_K_WKV7_LORA] = "wkv7-lora",
    [VK_K_WKV7_ROWS] = "wkv7-rows", [VK_K_WKV7_NORM] = "wkv7-norm",
    [VK_K_COPY] = "copy",       [VK_K_SOFTMAX] = "softmax",     [VK_K_GEMV_SPARSE] = "gemv-sparse",
    [VK_K_GEMV_MIX] = "gemv-mix",  [VK_K_TOKEN7] = "token7",
};

const char *vk_kernel_name(int kernel)
{
    return kernel >= 0 && kernel < VK_K_COUNT && kernel_names[kernel] ? kernel_names[kernel] : "?";
}

/* Tensor-core tiles (tokens x rows, warps along each), picked by how many workgroups they give. */
/* Measured with bench/vk_gemm.c on an H200 and an H100 (PERF.md, session 3): F16 activations leave room
 * for 64-wide K slices (+10-30 %); in the split mode 64 x 128 tiles matched 128 x 128 ones alone but made
 * 7.2b prefill 5 % slower. */
const struct vk_cm_tile vk_cm_tiles[2][3] = {
    {{32, 32, 2, 2, 128}, {64, 64, 2, 2, 32}, {128, 128, 2, 4, 32}},
    {{32, 32, 2, 2, 128}, {64, 64, 2, 2, 64}, {128, 128, 2, 4, 64}},
};

size_t vk_cm_shared_bytes(const struct vk_cm_tile *t, int split)
{
    size_t stage = ((size_t)(1 + (split != 0)) * t->tm + t->tn) * (t->tk + 8) * 2;
    size_t epilogue = (size_t)t->wm * t->wn * 16 * 20 * 4; /* 16 rows of 16 + 4 floats per warp */
    return (stage > epilogue ? stage : epilogue) + 16;
}

int vk_cm_tile_parse(const char *s, struct vk_cm_tile *t)
{
    unsigned v[5];
    int used = 0;
    if (!s || sscanf(s, "%u,%u,%u,%u,%u%n", &v[0], &v[1], &v[2], &v[3], &v[4], &used) != 5 || s[used])
        return 0;
    /* warps of 16 x 16 blocks, at most 32 warps, K in blocks of 16 */
    if (!v[2] || !v[3] || v[2] * v[3] > 32 || v[0] % (16 * v[2]) || v[1] % (16 * v[3]) || !v[0] || !v[1] ||
        v[0] > 256 || v[1] > 256 || !v[4] || v[4] % 16 || v[4] > 256)
        return 0;
    *t = (struct vk_cm_tile){v[0], v[1], v[2], v[3], v[4]};
    return 1;
}

#define NONE_ -1
/* SPIR-V of each kernel by [F32 weights][shared-memory reductions]; NONE_ where there is no variant. */
static const int spv_of[VK_K_COUNT][2][2] = {
    [VK_K_EMBED] = {{RWKV_SPV_embed_f16, RWKV_SPV_embed_f16}, {RWKV_SPV_embed_f32, RWKV_SPV_embed_f32}},
    [VK_K_NORMMIX] = {{RWKV_SPV_normmix, RWKV_SPV_normmix_nosg}, {RWKV_SPV_normmix, RWKV_SPV_normmix_nosg}},
    [VK_K_NORMMIX_ONE] = {{RWKV_SPV_normmix_one, RWKV_SPV_normmix_one_nosg},
                          {RWKV_SPV_normmix_one, RWKV_SPV_normmix_one_nosg}},
    [VK_K_SHIFT] = {{RWKV_SPV_shift, RWKV_SPV_shift}, {RWKV_SPV_shift, RWKV_SPV_shift}},
    [VK_K_ROWS] = {{RWKV_SPV_rows, RWKV_SPV_rows}, {RWKV_SPV_rows, RWKV_SPV_rows}},
    [VK_K_MATMUL] = {{RWKV_SPV_matmul_f16, RWKV_SPV_matmul_f16_nosg}, {RWKV_SPV_matmul_f32, RWKV_SPV_matmul_f32_nosg}},
    [VK_K_GEMV] = {{RWKV_SPV_gemv_f16, NONE_}, {RWKV_SPV_gemv_f32, NONE_}},
    [VK_K_GEMM] = {{RWKV_SPV_gemm_f16, RWKV_SPV_gemm_f16}, {RWKV_SPV_gemm_f32, RWKV_SPV_gemm_f32}},
    [VK_K_GEMM_CM] = {{RWKV_SPV_gemm_cm, RWKV_SPV_gemm_cm}, {NONE_, NONE_}},
    [VK_K_KSUM] = {{RWKV_SPV_ksum, RWKV_SPV_ksum}, {RWKV_SPV_ksum, RWKV_SPV_ksum}},
    [VK_K_WKV4] = {{RWKV_SPV_wkv4, RWKV_SPV_wkv4}, {RWKV_SPV_wkv4, RWKV_SPV_wkv4}},
    [VK_K_WKV5] = {{RWKV_SPV_wkv5, RWKV_SPV_wkv5_nosg}, {RWKV_SPV_wkv5, RWKV_SPV_wkv5_nosg}},
    [VK_K_WKV7] = {{RWKV_SPV_wkv7, RWKV_SPV_wkv7_nosg}, {RWKV_SPV_wkv7, RWKV_SPV_wkv7_nosg}},
    [VK_K_WKV7_ONE] = {{RWKV_SPV_wkv7_one, NONE_}, {RWKV_SPV_wkv7_one, NONE_}},
    [VK_K_WKV7_LORA] = {{RWKV_SPV_wkv7_lora_f16, NONE_}, {RWKV_SPV_wkv7_lora_f32, NONE_}},
    [VK_K_WKV7_ROWS] = {{RWKV_SPV_wkv7_rows, NONE_}, {RWKV_SPV_wkv7_rows, NONE_}},
    [VK_K_WKV7_NORM] = {{RWKV_SPV_wkv7_rows, NONE_}, {RWKV_SPV_wkv7_rows, NONE_}},
    [VK_K_COPY] = {{RWKV_SPV_copy, RWKV_SPV_copy}, {RWKV_SPV_copy, RWKV_SPV_copy}},
    [VK_K_SOFTMAX] = {{RWKV_SPV_softmax, RWKV_SPV_softmax_nosg}, {RWKV_SPV_softmax, RWKV_SPV_softmax_nosg}},
    [VK_K_GEMV_SPARSE] = {{RWKV_SPV_gemv_sparse, RWKV_SPV_gemv_sparse}, {NONE_, NONE_}},
    [VK_K_GEMV_MIX] = {{RWKV_SPV_gemv_mix_f16, NONE_}, {RWKV_SPV_gemv_mix_f32, NONE_}},
    [VK_K_TOKEN7] = {{RWKV_SPV_token7, NONE_}, {NONE_, NONE_}},
};

static int spv_for(const struct vk_dev *d, int kernel, enum rwkv_dtype dtype)
{
    if (kernel == VK_K_TOKEN7)
        return !d->token_layout || d->token_groups <= 0 || dtype != RWKV_DTYPE_F16 ? NONE_
               : d->token_blocks != VK_TOKEN_MODEL_BLOCKS_BIG ? RWKV_SPV_token7
               : d->token_clock ? RWKV_SPV_token7_prof : RWKV_SPV_token7_big;
    if ((kernel == VK_K_GEMM_CM && d->feat.coopmat == VK_COOPMAT_OFF) ||
        ((kernel == VK_K_WKV7_ONE || kernel == VK_K_WKV7_LORA || kernel == VK_K_WKV7_ROWS ||
          kernel == VK_K_WKV7_NORM) && !d->feat.subgroup_shuffle) ||
        !d->set_layouts[vk_kernel_bindings(kernel)])
        return NONE_;
    return spv_of[kernel][dtype == RWKV_DTYPE_F32][!d->feat.use_subgroup];
}

int vk_kernel_available(const struct vk_dev *d, int kernel, enum rwkv_dtype dtype)
{
    return spv_for(d, kernel, dtype) != NONE_;
}

VkDescriptorSetLayout vk_set_layout(struct vk_dev *d, int kernel)
{
    return kernel == VK_K_TOKEN7 ? d->token_set_layout : d->set_layouts[vk_kernel_bindings(kernel)];
}

VkPipelineLayout vk_pipeline_layout(struct vk_dev *d, int kernel)
{
    return kernel == VK_K_TOKEN7 ? d->token_layout : d->layouts[vk_kernel_bindings(kernel)];
}

/* token7.comp: the model's blocks, the state's blocks (arrays), its table, the chunk table, its
 * barrier's words. */
static rwkv_status token_layout_init(struct vk_dev *d, struct rwkv_error *err)
{
    d->token_blocks = d->lim.max_bindings >= VK_TOKEN_MODEL_BLOCKS_BIG + VK_TOKEN_ACT_BLOCKS + 3
                          ? VK_TOKEN_MODEL_BLOCKS_BIG : VK_TOKEN_MODEL_BLOCKS;
    uint32_t count[5] = {(uint32_t)d->token_blocks, VK_TOKEN_ACT_BLOCKS, 1, 1, 1};
    if (d->token_groups <= 0 || d->lim.max_bindings < VK_TOKEN_MODEL_BLOCKS + VK_TOKEN_ACT_BLOCKS + 3) {
        d->token_groups = 0;
        return RWKV_OK;
    }
    VkDescriptorSetLayoutBinding b[5];
    for (uint32_t i = 0; i < 5; i++)
        b[i] = (VkDescriptorSetLayoutBinding){i, VK_DESCRIPTOR_TYPE_STORAGE_BUFFER, count[i],
                                              VK_SHADER_STAGE_COMPUTE_BIT, NULL};
    VkDescriptorSetLayoutCreateInfo li = {.sType = VK_STRUCTURE_TYPE_DESCRIPTOR_SET_LAYOUT_CREATE_INFO,
                                          .bindingCount = 5, .pBindings = b};
    VkResult r = vkCreateDescriptorSetLayout(d->device, &li, NULL, &d->token_set_layout);
    if (r != VK_SUCCESS)
        return vk_fail(d, r, err, "vkCreateDescriptorSetLayout");
    VkPushConstantRange pc = {VK_SHADER_STAGE_COMPUTE_BIT, 0, sizeof(struct vk_push)};
    VkPipelineLayoutCreateInfo pi = {.sType = VK_STRUCTURE_TYPE_PIPELINE_LAYOUT_CREATE_INFO, .setLayoutCount = 1,
                                     .pSetLayouts = &d->token_set_layout, .pushConstantRangeCount = 1,
                                     .pPushConstantRanges = &pc};
    if ((r = vkCreatePipelineLayout(d->device, &pi, NULL, &d->token_layout)) != VK_SUCCESS)
        return vk_fail(d, r, err, "vkCreatePipelineLayout");
    return RWKV_OK;
}

static rwkv_status layouts_init(struct vk_dev *d, struct rwkv_error *err)
{
    for (int k = 0; k < VK_K_COUNT; k++) {
        if (k == VK_K_TOKEN7)
            continue;
        uint32_t n = (uint32_t)vk_kernel_bindings(k);
        if (n > d->lim.max_bindings && k == VK_K_WKV7_LORA)
            continue; /* an optional kernel: vk_kernel_available() says no */
        if (n > d->lim.max_bindings)
            return rwkv_fail(err, RWKV_ERR_UNSUPPORTED, "vulkan: kernels need %u storage buffers per stage, the "
                             "device allows %u", n, d->lim.max_bindings);
        if (d->set_layouts[n])
            continue;
        VkDescriptorSetLayoutBinding b[VK_MAX_BINDINGS];
        for (uint32_t i = 0; i < n; i++)
            b[i] = (VkDescriptorSetLayoutBinding){i, VK_DESCRIPTOR_TYPE_STORAGE_BUFFER, 1, VK_SHADER_STAGE_COMPUTE_BIT,
                                                  NULL};
        VkDescriptorSetLayoutCreateInfo li = {.sType = VK_STRUCTURE_TYPE_DESCRIPTOR_SET_LAYOUT_CREATE_INFO,
                                              .bindingCount = n, .pBindings = b};
        VkResult r = vkCreateDescriptorSetLayout(d->device, &li, NULL, &d->set_layouts[n]);
        if (r != VK_SUCCESS)
            return vk_fail(d, r, err, "vkCreateDescriptorSetLayout");
        VkPushConstantRange pc = {VK_SHADER_STAGE_COMPUTE_BIT, 0, sizeof(struct vk_push)};
        VkPipelineLayoutCreateInfo pi = {.sType = VK_STRUCTURE_TYPE_PIPELINE_LAYOUT_CREATE_INFO, .setLayoutCount = 1,
                                         .pSetLayouts = &d->set_layouts[n], .pushConstantRangeCount = 1,
                                         .pPushConstantRanges = &pc};
        if ((r = vkCreatePipelineLayout(d->device, &pi, NULL, &d->layouts[n])) != VK_SUCCESS)
            return vk_fail(d, r, err, "vkCreatePipelineLayout");
    }
    return RWKV_OK;
}

/* ---- the pipeline cache on disk ---- */

static int mkdir_ok(const char *path)
{
    return mkdir(path, 0755) == 0 || errno == EEXIST;
}

static void cache_path(struct vk_dev *d)
{
    d->cache_path[0] = '\0';
    const char *no = getenv("RWKV_VK_NO_PIPELINE_CACHE");
    if (no && *no && strcmp(no, "0") != 0)
        return;
    char dir[900];
    const char *xdg = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
    if (xdg && *xdg)
        snprintf(dir, sizeof dir, "%s", xdg);
    else if (home && *home)
        snprintf(dir, sizeof dir, "%s/.cache", home);
    else
        return;
    if (!mkdir_ok(dir))
        return;
    size_t n = strlen(dir);
    snprintf(dir + n, sizeof dir - n, "/rwkv-c");
    if (!mkdir_ok(dir))
        return;
    char uuid[2 * VK_UUID_SIZE + 1];
    for (unsigned i = 0; i < VK_UUID_SIZE; i++)
        snprintf(uuid + 2 * i, 3, "%02x", d->props.pipelineCacheUUID[i]);
    snprintf(d->cache_path, sizeof d->cache_path, "%s/vk-%04x-%04x-%08x-%s.bin", dir, d->props.vendorID,
             d->props.deviceID, d->props.driverVersion, uuid);
}

/* The cached bytes (malloc'ed) or NULL. */
static void *cache_read(const char *path, size_t *n)
{
    *n = 0;
    FILE *f = path[0] ? fopen(path, "rb") : NULL;
    if (!f)
        return NULL;
    void *buf = NULL;
    long size = fseek(f, 0, SEEK_END) == 0 ? ftell(f) : -1;
    if (size > 0 && size < (64L << 20) && fseek(f, 0, SEEK_SET) == 0 && (buf = malloc((size_t)size))) {
        if (fread(buf, 1, (size_t)size, f) == (size_t)size) {
            *n = (size_t)size;
        } else {
            free(buf);
            buf = NULL;
        }
    }
    fclose(f);
    return buf;
}

/* Written to a temporary file and renamed, so that concurrent processes never read a torn file. */
static void cache_write(struct vk_dev *d)
{
    size_t n = 0;
    if (!d->cache || !d->cache_dirty || !d->cache_path[0] ||
        vkGetPipelineCacheData(d->device, d->cache, &n, NULL) != VK_SUCCESS || n == 0)
        return;
    void *buf = malloc(n);
    if (!buf)
        return;
    char tmp[1100];
    snprintf(tmp, sizeof tmp, "%s.%ld.tmp", d->cache_path, (long)getpid());
    FILE *f = NULL;
    if (vkGetPipelineCacheData(d->device, d->cache, &n, buf) == VK_SUCCESS && (f = fopen(tmp, "wb"))) {
        int ok = fwrite(buf, 1, n, f) == n;
        ok = (fclose(f) == 0) && ok;
        if (!ok || rename(tmp, d->cache_path) != 0)
            remove(tmp);
    }
    free(buf);
}

static rwkv_status cache_init(struct vk_dev *d, struct rwkv_error *err)
{
    cache_path(d);
    size_t n;
    void *data = cache_read(d->cache_path, &n);
    VkPipelineCacheCreateInfo ci = {.sType = VK_STRUCTURE_TYPE_PIPELINE_CACHE_CREATE_INFO, .initialDataSize = n,
                                    .pInitialData = data};
    VkResult r = vkCreatePipelineCache(d->device, &ci, NULL, &d->cache);
    if (r != VK_SUCCESS && data) { /* a damaged file: start empty */
        ci.initialDataSize = 0;
        ci.pInitialData = NULL;
        r = vkCreatePipelineCache(d->device, &ci, NULL, &d->cache);
    }
    free(data);
    if (r != VK_SUCCESS)
        return vk_fail(d, r, err, "vkCreatePipelineCache");
    return RWKV_OK;
}

rwkv_status vk_pipelines_init(struct vk_dev *d, struct rwkv_error *err)
{
    rwkv_status st = layouts_init(d, err);
    if (!st)
        st = token_layout_init(d, err);
    if (!st)
        st = cache_init(d, err);
    return st;
}

void vk_pipelines_free(struct vk_dev *d)
{
    for (int i = 0; i < d->n_pipes; i++)
        vkDestroyPipeline(d->device, d->pipes[i].pipeline, NULL);
    free(d->pipes);
    d->pipes = NULL;
    d->n_pipes = d->cap_pipes = 0;
    if (d->cache) {
        cache_write(d);
        vkDestroyPipelineCache(d->device, d->cache, NULL);
        d->cache = VK_NULL_HANDLE;
    }
    if (d->token_layout)
        vkDestroyPipelineLayout(d->device, d->token_layout, NULL);
    if (d->token_set_layout)
        vkDestroyDescriptorSetLayout(d->device, d->token_set_layout, NULL);
    d->token_layout = VK_NULL_HANDLE;
    d->token_set_layout = VK_NULL_HANDLE;
    for (int i = 0; i <= VK_MAX_BINDINGS; i++) {
        if (d->layouts[i])
            vkDestroyPipelineLayout(d->device, d->layouts[i], NULL);
        if (d->set_layouts[i])
            vkDestroyDescriptorSetLayout(d->device, d->set_layouts[i], NULL);
        d->layouts[i] = VK_NULL_HANDLE;
        d->set_layouts[i] = VK_NULL_HANDLE;
    }
}

/* ---- pipelines ---- */

static rwkv_status pipeline_create(struct vk_dev *d, int spv, int kernel, const uint32_t spec[VK_SPEC],
                                   VkPipeline *out, struct rwkv_error *err)
{
    VkShaderModuleCreateInfo mi = {.sType = VK_STRUCTURE_TYPE_SHADER_MODULE_CREATE_INFO,
                                   .codeSize = rwkv_spv_size[spv], .pCode = rwkv_spv_code[spv]};
    VkShaderModule mod;
    VkResult r = vkCreateShaderModule(d->device, &mi, NULL, &mod);
    if (r != VK_SUCCESS)
        return vk_fail(d, r, err, "vkCreateShaderModule");
    VkSpecializationMapEntry map[VK_SPEC];
    for (uint32_t i = 0; i < VK_SPEC; i++)
        map[i] = (VkSpecializationMapEntry){i, i * 4, 4};
    VkSpecializationInfo si = {VK_SPEC, map, VK_SPEC * sizeof(uint32_t), spec};
    VkComputePipelineCreateInfo ci = {
        .sType = VK_STRUCTURE_TYPE_COMPUTE_PIPELINE_CREATE_INFO,
        .stage = {.sType = VK_STRUCTURE_TYPE_PIPELINE_SHADER_STAGE_CREATE_INFO, .stage = VK_SHADER_STAGE_COMPUTE_BIT,
                  .module = mod, .pName = "main", .pSpecializationInfo = &si},
        .layout = vk_pipeline_layout(d, kernel)};
    if (d->pipe_stats)
        ci.flags |= VK_PIPELINE_CREATE_CAPTURE_STATISTICS_BIT_KHR;
    r = vkCreateComputePipelines(d->device, d->cache, 1, &ci, NULL, out);
    vkDestroyShaderModule(d->device, mod, NULL);
    if (r != VK_SUCCESS) {
        char what[96];
        snprintf(what, sizeof what, "creating pipeline %s", rwkv_spv_name[spv]);
        return vk_fail(d, r, err, what);
    }
    return RWKV_OK;
}

void vk_pipeline_stats(struct vk_dev *d, VkPipeline pipe, char *buf, size_t n)
{
    buf[0] = '\0';
    PFN_vkGetPipelineExecutableStatisticsKHR get =
        d->pipe_stats ? (PFN_vkGetPipelineExecutableStatisticsKHR)vkGetDeviceProcAddr(
                            d->device, "vkGetPipelineExecutableStatisticsKHR")
                      : NULL;
    VkPipelineExecutableInfoKHR ei = {.sType = VK_STRUCTURE_TYPE_PIPELINE_EXECUTABLE_INFO_KHR, .pipeline = pipe};
    VkPipelineExecutableStatisticKHR st[24];
    uint32_t count = 24;
    for (uint32_t i = 0; i < count; i++)
        st[i] = (VkPipelineExecutableStatisticKHR){.sType = VK_STRUCTURE_TYPE_PIPELINE_EXECUTABLE_STATISTIC_KHR};
    if (!get || get(d->device, &ei, &count, st) < 0)
        return;
    size_t used = 0;
    for (uint32_t i = 0; i < count && used + 1 < n; i++) {
        int w = 0;
        switch (st[i].format) {
        case VK_PIPELINE_EXECUTABLE_STATISTIC_FORMAT_BOOL32_KHR:
            w = snprintf(buf + used, n - used, "%s%s %u", used ? ", " : "", st[i].name, (unsigned)st[i].value.b32);
            break;
        case VK_PIPELINE_EXECUTABLE_STATISTIC_FORMAT_INT64_KHR:
            w = snprintf(buf + used, n - used, "%s%s %lld", used ? ", " : "", st[i].name, (long long)st[i].value.i64);
            break;
        case VK_PIPELINE_EXECUTABLE_STATISTIC_FORMAT_UINT64_KHR:
            w = snprintf(buf + used, n - used, "%s%s %llu", used ? ", " : "", st[i].name,
                         (unsigned long long)st[i].value.u64);
            break;
        default:
            w = snprintf(buf + used, n - used, "%s%s %g", used ? ", " : "", st[i].name, st[i].value.f64);
            break;
        }
        if (w < 0)
            break;
        used += (size_t)w < n - used ? (size_t)w : n - used - 1;
    }
}

rwkv_status vk_pipeline_get(struct vk_dev *d, int kernel, enum rwkv_dtype dtype, const uint32_t spec[VK_SPEC],
                            VkPipeline *out, struct rwkv_error *err)
{
    int spv = spv_for(d, kernel, dtype);
    if (spv == NONE_)
        return rwkv_fail(err, RWKV_ERR_UNSUPPORTED, "internal: vulkan kernel %s has no variant here",
                         vk_kernel_name(kernel));
    rwkv_status st = RWKV_OK;
    pthread_mutex_lock(&d->lock);
    for (int i = 0; i < d->n_pipes; i++) {
        if (d->pipes[i].spv == spv && memcmp(d->pipes[i].spec, spec, sizeof d->pipes[i].spec) == 0) {
            *out = d->pipes[i].pipeline;
            goto done;
        }
    }
    if (d->n_pipes == d->cap_pipes) {
        int nc = d->cap_pipes ? 2 * d->cap_pipes : 32;
        struct vk_pipe *np = realloc(d->pipes, (size_t)nc * sizeof *np);
        if (!np) {
            st = rwkv_fail(err, RWKV_ERR_NOMEM, "out of memory");
            goto done;
        }
        d->pipes = np;
        d->cap_pipes = nc;
    }
    st = pipeline_create(d, spv, kernel, spec, out, err);
    if (!st) {
        struct vk_pipe *p = &d->pipes[d->n_pipes++];
        p->spv = spv;
        memcpy(p->spec, spec, sizeof p->spec);
        p->pipeline = *out;
        d->cache_dirty = 1;
    }
done:
    pthread_mutex_unlock(&d->lock);
    return st;
}
