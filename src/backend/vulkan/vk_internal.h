/* Internals of the Vulkan backend, shared by its files (not by the rest of the library).
 *
 * vk_device.c   instance, physical device choice, feature probes, queue, one-shot transfers
 * vk_memory.c   pools of large buffers, spans inside them, staging, weight upload
 * vk_pipeline.c kernels (embedded SPIR-V), descriptor set layouts, pipelines, the on-disk cache
 * vk_backend.c  the backend ops: model upload, state buffers and descriptor sets, state read/write
 * vk_exec.c     recording and submitting one chunk of a layer program
 */
#ifndef RWKV_BACKEND_VULKAN_VK_INTERNAL_H
#define RWKV_BACKEND_VULKAN_VK_INTERNAL_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <vulkan/vulkan.h>

#include "backend/backend.h"

/* ---- device ---- */

struct vk_features {
    uint32_t subgroup_size;
    int subgroup_arith;  /* basic + arithmetic subgroup ops in compute shaders */
    int use_subgroup;    /* reductions use subgroup ops (else shared memory); env RWKV_VK_NO_SUBGROUP=1 */
    int fp16;            /* shaderFloat16 (not used yet) */
    int storage16;       /* storageBuffer16BitAccess (not used yet: F16 is read as packed uint pairs) */
    int int_dot;         /* VK_KHR_shader_integer_dot_product (not used yet) */
    int coopmat_nv, coopmat_khr; /* cooperative matrix extensions (not used yet) */
};

struct vk_limits {
    VkDeviceSize max_range;   /* maxStorageBufferRange: the most one descriptor may cover */
    VkDeviceSize split_bytes; /* weight blocks and parts, per-output tiles: <= max_range, <= 1 GiB */
    VkDeviceSize max_alloc;   /* maxMemoryAllocationSize */
    VkDeviceSize align;       /* offset alignment of spans (minStorageBufferOffsetAlignment, >= 16) */
    uint32_t max_groups[3];   /* maxComputeWorkGroupCount */
    uint32_t max_wg;          /* most invocations in one workgroup along x */
    uint32_t max_bindings;    /* maxPerStageDescriptorStorageBuffers */
    uint32_t max_shared;      /* maxComputeSharedMemorySize, bytes */
};

struct vk_pipe {
    int spv;         /* enum rwkv_spv_id: the kernel's variant */
    uint32_t spec[4];
    VkPipeline pipeline;
};

struct vk_dev {
    VkInstance instance;
    VkPhysicalDevice phys;
    VkDevice device;
    VkQueue queue;
    uint32_t queue_family;
    VkPhysicalDeviceProperties props;
    VkPhysicalDeviceMemoryProperties mem;
    struct vk_features feat;
    struct vk_limits lim;
    pthread_mutex_t lock;   /* the queue and the pipeline list */
    int lock_ok;
    VkBuffer dummy;         /* bound where an optional input is absent */
    VkDeviceMemory dummy_mem;
    VkPipelineCache cache;
    int cache_dirty;
    char cache_path[1024];
    VkDescriptorSetLayout set_layouts[16]; /* by binding count; created on first use */
    VkPipelineLayout layouts[16];
    struct vk_pipe *pipes;
    int n_pipes, cap_pipes;
    int lost;               /* VK_ERROR_DEVICE_LOST seen: every later call fails */
};

rwkv_status vk_device_open(struct rwkv_device *dev, struct rwkv_error *err);
void vk_device_free(struct rwkv_device *dev);

/* Maps a VkResult to a status and message "what: VK_ERROR_...". Marks the device lost when it is. */
rwkv_status vk_fail(struct vk_dev *d, VkResult r, struct rwkv_error *err, const char *what);
const char *vk_result_name(VkResult r);

/* A command buffer with its own pool and fence: one per state, one per model upload, so that threads
 * using different states never share a pool. Recording is synchronous: begin, record, submit + wait. */
struct vk_cmd {
    VkCommandPool pool;
    VkCommandBuffer cb;
    VkFence fence;
};

rwkv_status vk_cmd_init(struct vk_dev *d, struct vk_cmd *c, struct rwkv_error *err);
void vk_cmd_free(struct vk_dev *d, struct vk_cmd *c);
/* Begins recording, with a full barrier against everything submitted before. */
rwkv_status vk_cmd_begin(struct vk_dev *d, struct vk_cmd *c, struct rwkv_error *err);
/* Ends with a full barrier (host reads included), submits under the device lock and waits. */
rwkv_status vk_cmd_submit(struct vk_dev *d, struct vk_cmd *c, struct rwkv_error *err);

/* A full memory barrier between every earlier and later command (compute, transfer, host). */
void vk_barrier_all(VkCommandBuffer cb);

/* ---- memory ---- */

/* A pool is a list of blocks, each one VkBuffer over its own VkDeviceMemory. Sizes are planned first
 * (vk_pool_reserve hands out spans), then vk_pool_commit creates each block at its used size. */
struct vk_block {
    VkBuffer buffer;
    VkDeviceMemory memory;
    VkDeviceSize size;
    void *mapped; /* host-visible pools only */
};

struct vk_span {
    int block;
    VkDeviceSize offset, size;
};

struct vk_pool {
    struct vk_block *blocks;
    int n_blocks, cap_blocks;
    VkDeviceSize block_cap; /* no block grows beyond this */
    VkDeviceSize align;
};

void vk_pool_init(struct vk_pool *p, VkDeviceSize block_cap, VkDeviceSize align);
/* Plans `size` bytes (rounded up to 4) in the current block, or a new one. Fails (RWKV_ERR_UNSUPPORTED)
 * when size exceeds block_cap; `what` names the tensor in the message. */
rwkv_status vk_pool_reserve(struct vk_pool *p, VkDeviceSize size, struct vk_span *out, const char *what,
                            struct rwkv_error *err);
/* Creates the planned blocks. `host`: host-visible, coherent and mapped (else device-local preferred). */
rwkv_status vk_pool_commit(struct vk_dev *d, struct vk_pool *p, VkBufferUsageFlags usage, int host,
                           struct rwkv_error *err);
void vk_pool_free(struct vk_dev *d, struct vk_pool *p);

static inline VkDescriptorBufferInfo vk_span_info(const struct vk_pool *p, struct vk_span s)
{
    VkDescriptorBufferInfo i = {p->blocks[s.block].buffer, s.offset, s.size};
    return i;
}

static inline void *vk_span_host(const struct vk_pool *p, struct vk_span s)
{
    return (uint8_t *)p->blocks[s.block].mapped + s.offset;
}

/* A host-visible staging buffer of `size` bytes (one block, mapped). */
rwkv_status vk_staging_new(struct vk_dev *d, struct vk_pool *p, VkDeviceSize size, struct rwkv_error *err);

/* ---- kernels and pipelines ---- */

enum vk_kernel_id {
    VK_K_EMBED,
    VK_K_LAYERNORM,
    VK_K_SHIFT,
    VK_K_ROWS,   /* LERP, MULADD, COPY, GATHER: spec constant 1 = mode */
    VK_K_MATMUL,
    VK_K_WKV4,
    VK_K_WKV5,
    VK_K_WKV7,
    VK_K_COUNT
};

enum vk_rows_mode { VK_ROWS_LERP, VK_ROWS_MULADD, VK_ROWS_COPY, VK_ROWS_GATHER };

/* Bindings of every kernel, in this order: out, in[0..n_in), w[0..n_w), state (opt), chunk (opt). */
struct vk_kernel_desc {
    int n_in, n_w, state, chunk;
};
extern const struct vk_kernel_desc vk_kernels[VK_K_COUNT];

static inline int vk_kernel_bindings(int k)
{
    return 1 + vk_kernels[k].n_in + vk_kernels[k].n_w + vk_kernels[k].state + vk_kernels[k].chunk;
}

/* Push constants, one layout for all kernels (shaders/common.glsl mirrors it; 128 bytes at most). */
struct vk_push {
    uint32_t rows;          /* rows of this op: tokens, or the per-output tile's rows */
    uint32_t width;         /* columns of the out view */
    uint32_t out_col, out_stride;
    uint32_t in_col[6], in_stride[6];
    uint32_t k;             /* MATMUL: input width */
    uint32_t row0, nrows;   /* MATMUL/EMBED: the weight part's first row and row count */
    uint32_t flags;         /* bit i: in[i] present; bit 8+i: w[i] present; bit 16: accumulate */
    uint32_t act;
    float eps;
    uint32_t heads, head_size;
    uint32_t n_seg;
    uint32_t out_base;      /* per-output tile: its first logits row */
    uint32_t state_stride;  /* floats per slot in the state region */
    uint32_t state_off;     /* the op's first float within its region's slot */
};

/* 128 bytes is the least maxPushConstantsSize a device may have */
_Static_assert(sizeof(struct vk_push) <= 128, "push constants beyond the guaranteed 128 bytes");

#define VK_FLAG_W(i) (1u << (8 + (i)))
#define VK_FLAG_ACCUMULATE (1u << 16)

/* Workgroup sizes chosen on the C side (spec constant 0 of each kernel). */
#define VK_WG_ROWS 64
#define VK_WG_NORM 128
#define VK_WG_MATMUL 64
#define VK_MATMUL_ROWS 4 /* output rows per workgroup */
#define VK_MATMUL_TOK 4  /* tokens per tile; a workgroup walks all the chunk's tiles */

/* The pipeline of `kernel` for weights of `dtype` (F16/F32; ignored where no matrix is read) with the
 * given spec constants (spec[0] = workgroup size). Created once per device and cached. */
rwkv_status vk_pipeline_get(struct vk_dev *d, int kernel, enum rwkv_dtype dtype, const uint32_t spec[4],
                            VkPipeline *out, struct rwkv_error *err);
VkPipelineLayout vk_pipeline_layout(struct vk_dev *d, int kernel);
VkDescriptorSetLayout vk_set_layout(struct vk_dev *d, int kernel);
/* Set layouts and pipeline layouts for every kernel; the pipeline cache from disk. */
rwkv_status vk_pipelines_init(struct vk_dev *d, struct rwkv_error *err);
/* Writes the pipeline cache back to disk (when new pipelines were made) and destroys everything. */
void vk_pipelines_free(struct vk_dev *d);

/* ---- model and state ---- */

struct vk_part {
    struct vk_span span;
    uint32_t row0, nrows;
};

/* A weight on the device: a vector (one part) or a matrix split into parts of whole rows. */
struct vk_tensor {
    enum rwkv_dtype dtype; /* F16 or F32 */
    uint32_t cols;
    int n_parts;           /* 0: not used by the program */
    struct vk_part *parts;
};

struct vk_op_kernel {
    int kernel;          /* enum vk_kernel_id, -1 for HOOK */
    VkPipeline pipeline;
    int n_parts;         /* dispatches: the parts of the matrix (MATMUL/EMBED), else 1 */
};

struct vk_model {
    struct vk_pool pool;
    struct vk_tensor *w;     /* [n_weights] */
    struct vk_op_kernel *ok; /* [n_ops] */
};

/* A range of the per-slot state as the program's ops use it, stored for all slots together:
 * slot b's float i of the range is at span + (b * floats + i) * 4. */
struct vk_region {
    size_t start, floats;
    struct vk_span span;
};

struct vk_dispatch {
    int op;
    int part;
    VkDescriptorSet set;
};

struct vk_state {
    struct vk_pool act;        /* runtime buffers, the chunk table, the state regions */
    struct vk_span bufs[RWKV_MAX_BUFFERS];
    struct vk_span chunk;
    struct vk_region *regions;
    int n_regions;
    int *op_region;            /* [n_ops] region of SHIFT/WKV ops, else -1 */
    int out_tile;              /* logits rows per pass over the per-output ops */
    int first_out_op;          /* first per-output op (n_ops when none) */
    struct vk_pool up, down;   /* staging: chunk table and state writes; logits and state reads */
    size_t chunk_words;
    VkDescriptorPool desc_pool;
    struct vk_dispatch *disp;
    int n_disp;
    struct vk_cmd cmd;
};

/* vk_exec.c */
rwkv_status vk_run(struct rwkv_state *s, const struct rwkv_chunk *chunk, float *const *rows,
                   struct rwkv_error *err);
/* Chunk table layout (uint32 words): header, then tokens. Header words: offsets of tok_seg, seg_slot,
 * seg_start, seg_len, out_rows. */
#define VK_CHUNK_HEADER 8

#endif
