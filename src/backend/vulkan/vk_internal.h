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
    int subgroup_shuffle; /* and shuffles (wkv7_one.comp) */
    int use_subgroup;    /* reductions use subgroup ops (else shared memory); env RWKV_VK_NO_SUBGROUP=1 */
    int fp16;            /* shaderFloat16 (enabled for the cooperative-matrix kernel) */
    int storage16;       /* storageBuffer16BitAccess (not used: F16 is read as packed uint pairs) */
    int int_dot;         /* VK_KHR_shader_integer_dot_product (not used yet) */
    int coopmat_nv, coopmat_khr; /* cooperative matrix extensions listed */
    int coopmat_f16;     /* VK_NV_cooperative_matrix with 16x16x16 F16 x F16 + F32 on subgroups of 32 */
    int coopmat;         /* prefill matmuls use it: enum vk_coopmat (env RWKV_VK_COOPMAT) */
    uint32_t ts_bits;    /* timestampValidBits of the queue (0: no timestamps) */
    int dyn_index;       /* shaderStorageBufferArrayDynamicIndexing (token7.comp's arrays of buffers) */
    uint32_t sm_count;   /* multiprocessors (VK_NV_shader_sm_builtins), 0 where the device does not say */
};

/* How prefill matmuls use tensor cores (RWKV_VK_COOPMAT=0|1|fp16): OFF keeps the fp32 tiled kernel;
 * SPLIT multiplies the F16 weights by x = hi + lo (two F16 parts: about fp32 accuracy, twice the
 * tensor work); FP16 by x rounded to F16 (fastest, about 1e-3 relative error per product).
 * FALLBACK (=fallback, for tests) is SPLIT with every tile taking the kernel's fp32 overflow path. */
enum vk_coopmat { VK_COOPMAT_OFF, VK_COOPMAT_SPLIT, VK_COOPMAT_FP16, VK_COOPMAT_FALLBACK };

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

#define VK_SPEC 7 /* specialization constants per pipeline (spec[0]: workgroup size) */
#define VK_MAX_BINDINGS 26 /* the most storage buffers a kernel binds (WKV7_LORA) */

/* Tile of a cooperative-matrix variant: tokens x rows, warps along each, K per shared-memory slice
 * (small tiles take long slices: fewer rounds of load latency per output). */
struct vk_cm_tile {
    uint32_t tm, tn, wm, wn, tk;
};
extern const struct vk_cm_tile vk_cm_tiles[2][3]; /* [F16 activations][VK_MM_CM_TINY, _SMALL, _BIG] */
/* Shared memory of gemm_cm.comp with tile `t` (F16 activations, or split ones staged twice): a slice of
 * A and B at TK + 8 halfs per row, or each warp's epilogue staging if more, and its flag. */
size_t vk_cm_shared_bytes(const struct vk_cm_tile *t, int split);
/* Parses "TM,TN,WM,WN,TK" (env RWKV_VK_CM_TINY/_SMALL/_BIG, the GEMM bench); 0 when malformed. */
int vk_cm_tile_parse(const char *s, struct vk_cm_tile *t);

struct vk_pipe {
    int spv;         /* enum rwkv_spv_id: the kernel's variant */
    uint32_t spec[VK_SPEC];
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
    VkDescriptorSetLayout set_layouts[VK_MAX_BINDINGS + 1]; /* by binding count; created on first use */
    VkPipelineLayout layouts[VK_MAX_BINDINGS + 1];
    struct vk_pipe *pipes;
    int n_pipes, cap_pipes;
    int lost;               /* VK_ERROR_DEVICE_LOST seen: every later call fails */
    int profile;            /* env RWKV_VK_PROFILE: 1 = time every dispatch, 2 = whole runs only */
    int cm_tile;            /* env RWKV_VK_CM_TILE=tiny|small|big forces that tensor-core tile (1-3; 0: by size) */
    struct vk_cm_tile cm_tiles[3]; /* the tensor-core tiles (vk_cm_tiles, or env RWKV_VK_CM_TINY/_SMALL/_BIG) */
    int gemv_round;         /* env RWKV_VK_GEMV_ROUND=1: a GEMV lane's blocks in one round (tuning) */
    int gemv_wgs;           /* env RWKV_VK_GEMV_WGS: most workgroups of a GEMV dispatch (0: one per row block) */
    int ksplit;             /* env RWKV_VK_KSPLIT: 0 never split a GEMM along K, N always in N parts (tests),
                             * -1 (default) by tile count */
    int table_copy;         /* env RWKV_VK_TABLE_COPY=1: chunk tables go up by a copy (tests) */
    int spin_us;            /* env RWKV_VK_SPIN_US: how long waits poll before they block */
    int serial;             /* env RWKV_VK_SERIAL=1: a barrier before every dispatch (measurements) */
    int sparse_ffn;         /* env RWKV_VK_SPARSE_FFN=1: one-token FFN value MATMULs skip the zero inputs of
                             * ReLU^2 (a transposed copy of those matrices: +1/6 of a v7 model's memory) */
    int mix_fuse;           /* env RWKV_VK_MIX_FUSE=0 turns off: chunks of one token skip NORMMIX, its consumers
                             * make their inputs (GEMV_MIX), the shift state is stored after them */
    int mix_wg, mix_per_sm, mix_unroll; /* tuning (env RWKV_VK_MIX_WG, _PER_SM, _UNROLL): GEMV_MIX's workgroup
                             * size, workgroups per multiprocessor and loads per lane and round (0: 1024, 2, 4) */
    int pipe_stats;         /* env RWKV_VK_PIPELINE_STATS=1 and the driver has them: pipelines keep statistics */
    int wkv7_one;           /* one-token kernels (WKV7, normmix): 2 with the LoRA fusion, 1 without
                             * (env RWKV_VK_ONE_TOKEN=nolora), 0 none (=0) */
    int wkv7_rows;          /* env RWKV_VK_WKV7_ROWS: 0 never split WKV7 over rows, P > 0 always with P
                             * invocations per row (tests), -1 (default) by segment length and head count */
    int token_groups;       /* workgroups of the one-dispatch v7 generation step (token7.comp, vk_token.c):
                             * env RWKV_VK_PERSISTENT=N, or =sm for the multiprocessor count where the device
                             * tells it (NVIDIA); 0 (default): off */
    VkDescriptorSetLayout token_set_layout; /* token7.comp's bindings (arrays of buffers) */
    int token_blocks;       /* the model blocks token7.comp's array holds (VK_TOKEN_MODEL_BLOCKS[_BIG]) */
    int token_clock;        /* RWKV_VK_PROFILE with VK_KHR_shader_clock: token7.comp times its phases */
    VkPipelineLayout token_layout;
};

rwkv_status vk_device_open(struct rwkv_device *dev, struct rwkv_error *err);
void vk_device_free(struct rwkv_device *dev);

/* Maps a VkResult to a status and message "what: VK_ERROR_...". Marks the device lost when it is. */
rwkv_status vk_fail(struct vk_dev *d, VkResult r, struct rwkv_error *err, const char *what);
const char *vk_result_name(VkResult r);

/* A command buffer with its own pool and fence: one per state, one per model upload, so that threads
 * using different states never share a pool. Recording is synchronous: begin, record, submit + wait.
 * A reusable one (the recorded chunks of vk_exec.c) may be executed again without re-recording. */
struct vk_cmd {
    VkCommandPool pool;
    VkCommandBuffer cb;
    VkFence fence;
    int reusable;
};

rwkv_status vk_cmd_init(struct vk_dev *d, struct vk_cmd *c, struct rwkv_error *err);
void vk_cmd_free(struct vk_dev *d, struct vk_cmd *c);
/* Begins recording, with a full barrier against everything submitted before. */
rwkv_status vk_cmd_begin(struct vk_dev *d, struct vk_cmd *c, struct rwkv_error *err);
/* Ends with a full barrier (host reads included), submits under the device lock and waits. */
rwkv_status vk_cmd_submit(struct vk_dev *d, struct vk_cmd *c, struct rwkv_error *err);
/* Ends recording (with that barrier) without submitting. */
rwkv_status vk_cmd_end(struct vk_dev *d, struct vk_cmd *c, struct rwkv_error *err);
/* Submits the recorded commands under the device lock and waits: vk_cmd_start, then vk_cmd_wait. */
rwkv_status vk_cmd_exec(struct vk_dev *d, struct vk_cmd *c, struct rwkv_error *err);
rwkv_status vk_cmd_start(struct vk_dev *d, struct vk_cmd *c, struct rwkv_error *err);
rwkv_status vk_cmd_wait(struct vk_dev *d, struct vk_cmd *c, struct rwkv_error *err);

/* GPU timestamps: a query pool of `cap` queries; pool is VK_NULL_HANDLE when the queue has none. */
struct vk_timer {
    VkQueryPool pool;
    uint32_t cap, n;
};
rwkv_status vk_timer_init(struct vk_dev *d, struct vk_timer *t, uint32_t cap, struct rwkv_error *err);
void vk_timer_free(struct vk_dev *d, struct vk_timer *t);
/* Records the reset of all queries (outside any render pass; before the first mark). */
void vk_timer_reset(VkCommandBuffer cb, struct vk_timer *t);
/* Records a timestamp once earlier commands finished; returns its index, or -1 when full or absent. */
int vk_timer_mark(VkCommandBuffer cb, struct vk_timer *t);
/* After the submission completed: the marks' times in ns (t->n values into ns[]). */
rwkv_status vk_timer_read(struct vk_dev *d, struct vk_timer *t, double *ns, struct rwkv_error *err);

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
/* Where a pool's blocks live: device-local (preferred); host-visible, coherent and mapped (cached
 * preferred: staging); or both device-local and host-visible, mapped (where the device has such
 * memory: small tables the host writes and kernels read, with no copy). */
enum vk_mem { VK_MEM_DEVICE, VK_MEM_HOST, VK_MEM_MAPPED_DEVICE };
/* Creates the planned blocks. */
rwkv_status vk_pool_commit(struct vk_dev *d, struct vk_pool *p, VkBufferUsageFlags usage, enum vk_mem mem,
                           struct rwkv_error *err);
/* Whether the device has VK_MEM_MAPPED_DEVICE memory for buffers of `usage`. */
int vk_has_mapped_device(struct vk_dev *d, VkBufferUsageFlags usage);
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
    VK_K_NORMMIX, /* LAYERNORM, with the SHIFT and LERPs that follow it (see normmix.comp) */
    VK_K_NORMMIX_ONE, /* the same for one-token segments, a row over several workgroups (a variant) */
    VK_K_SHIFT,
    VK_K_ROWS,    /* LERP, MULADD, COPY, GATHER: spec constant 1 = mode */
    VK_K_MATMUL,  /* any matrix op, any token count (the portable fallback) */
    VK_K_GEMV,    /* MATMUL of few tokens: 16-byte weight loads, subgroup reductions */
    VK_K_GEMM,    /* MATMUL of many tokens: shared-memory tiles, fp32 */
    VK_K_GEMM_CM, /* MATMUL of many tokens on tensor cores (VK_NV_cooperative_matrix) */
    VK_K_KSUM,    /* the sums of a GEMM_CM split along K, with the MATMUL epilogue (ksum.comp) */
    VK_K_WKV4,
    VK_K_WKV5,
    VK_K_WKV7,
    VK_K_WKV7_ONE, /* WKV7 of chunks whose segments are one token each (an op's variant, not its kernel) */
    VK_K_WKV7_LORA, /* the same, also doing the LoRA up-projections before it (the MATMULs it absorbs) */
    VK_K_WKV7_ROWS, /* WKV7 of long segments on few heads: P workgroups per head (wkv7.comp MODE 1)... */
    VK_K_WKV7_NORM, /* ...then GroupNorm, bonus and gate per (4 tokens, head) (MODE 2) */
    VK_K_COPY,    /* the copy-bandwidth yardstick: out = in, uvec4 at a time */
    VK_K_SOFTMAX, /* probabilities of the logits rows that asked for them (softmax.comp) */
    VK_K_GEMV_SPARSE, /* MATMUL of one token over W^T, skipping zero inputs (gemv_sparse.comp; a variant) */
    VK_K_GEMV_MIX, /* GEMV of one token making its input: NORMMIX's norm and one mix (gemv.comp MIX; a variant) */
    VK_K_TOKEN7,  /* a whole v7 generation step of one sequence in one dispatch (token7.comp, vk_token.c) */
    VK_K_COUNT
};

enum vk_rows_mode { VK_ROWS_LERP, VK_ROWS_MULADD, VK_ROWS_COPY, VK_ROWS_GATHER };

/* Bindings of every kernel, in this order: out, in[0..n_in), w[0..n_w), state (opt), chunk (opt), then
 * `extra` ones of the kernel's own (MATMUL: the absorbed LERP's in0, in1, out; matmul_out.glsl). */
struct vk_kernel_desc {
    int n_in, n_w, state, chunk, extra;
};
extern const struct vk_kernel_desc vk_kernels[VK_K_COUNT];

static inline int vk_kernel_bindings(int k)
{
    return 1 + vk_kernels[k].n_in + vk_kernels[k].n_w + vk_kernels[k].state + vk_kernels[k].chunk + vk_kernels[k].extra;
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
    uint32_t chunk_tokens;  /* the chunk's tokens (shaders/chunk.glsl derives the table's offsets) */
};

/* 128 bytes is the least maxPushConstantsSize a device may have */
_Static_assert(sizeof(struct vk_push) <= 128, "push constants beyond the guaranteed 128 bytes");

#define VK_FLAG_W(i) (1u << (8 + (i)))
#define VK_FLAG_ACCUMULATE (1u << 16)
/* MATMUL: then out2 = a + (b - a) * y, the absorbed LERP, with views a, b, out2 in in[1], in[2], in[3] */
#define VK_FLAG_LERP_OUT (1u << 17)
/* GEMM_CM split along K (push constant state_stride = parts, gl_WorkGroupID.z = part): raw sums into
 * the state's scratch, [part][token][row], then KSUM adds the parts in order and runs the epilogue.
 * Used where the output has few tiles (LoRA projections, batched generation) and K is long. */
#define VK_KSPLIT_MAX 8
#define VK_KSPLIT_TILES 132      /* splits while the tiles are fewer than one per H100/H200 SM... */
#define VK_KSPLIT_TARGET 264     /* ...into about this many (tiles x parts) */
#define VK_KSPLIT_MIN_K 256      /* least K per part */
#define VK_KSPLIT_SCRATCH ((size_t)64 << 20) /* at most this many bytes of scratch per state */

/* Workgroup sizes chosen on the C side (spec constant 0 of each kernel). */
#define VK_WG_ROWS 64
#define VK_NORM_PER 4    /* NORMMIX: channels per invocation, up to 1024 invocations */
#define VK_WG_MATMUL 64
#define VK_MATMUL_ROWS 4 /* output rows per workgroup */
#define VK_MATMUL_TOK 4  /* tokens per tile; a workgroup walks all the chunk's tiles */
#define VK_GEMV_SUBGROUPS 4 /* per workgroup; they split K (gemv.comp) */
#define VK_COPY_PARALLEL_BYTES ((size_t)4 << 20) /* logits readbacks from this size copied by threads */
#define VK_LORA_MAX_SEG 8 /* WKV7_LORA up to this many one-token segments (each reads the LoRA matrices
                           * of its heads: beyond, the projections' own dispatches read them once) */
#define VK_GEMV_MAX_T 15 /* GEMV up to this many tokens (4 per pass), GEMM from the next */
#define VK_SPARSE_OPW 32 /* gemv_sparse.comp: outputs per workgroup of 256 */
#define VK_WKV7_ROWS_P 4 /* WKV7 split over rows: invocations per row (RWKV_VK_WKV7_ROWS unset)... */
#define VK_WKV7_ROWS_GROUPS 132 /* ...where segments average over VK_GEMV_MAX_T tokens and the split's
                                 * workgroups are at most one per H100 SM (H200, 512 tokens: 32 heads 352 ->
                                 * 248 us per layer; 64 heads, two per SM, 356 -> 507 us) */
#define VK_GEMM_TILE 64  /* GEMM: 64 tokens x 64 rows per workgroup of 256 */
#define VK_WG_GEMM 256
#define VK_WG_COPY 256
#define VK_SPIN_US 10000 /* a generation step's length (7.2b on an H200: 5 ms): waits for it poll, longer ones then
                          * block (a thread waking from a blocking wait took the host ~20 us instead of ~6) */
#define VK_CM_MIN_GROUPS 120 /* the largest tensor-core tile that still gives about one workgroup per
                              * multiprocessor of an H100 (the smallest where none does; counting warps
                              * instead took 32 x 32 tiles without split-K for batched generation: x1.3) */

/* Matrix kernels an op may run with, chosen per chunk by its token count (vk_exec.c). */
enum vk_mm {
    VK_MM_BASIC,    /* matmul.comp: always there */
    VK_MM_GEMV1,    /* one token */
    VK_MM_GEMV4,    /* 2..VK_GEMV_MAX_T tokens, 4 per pass */
    VK_MM_GEMM,     /* more tokens: fp32 tiles */
    VK_MM_CM_TINY,  /* tensor cores, 32 x 32 tiles (few output rows: LoRA projections) */
    VK_MM_CM_SMALL, /* tensor cores, 64 x 64 tiles */
    VK_MM_CM_BIG,   /* tensor cores, 128 x 128 tiles (enough workgroups for the device) */
    VK_MM_COUNT
};


/* The pipeline of `kernel` for weights of `dtype` (F16/F32; ignored where no matrix is read) with the
 * given spec constants (spec[0] = workgroup size). Created once per device and cached. */
rwkv_status vk_pipeline_get(struct vk_dev *d, int kernel, enum rwkv_dtype dtype, const uint32_t spec[VK_SPEC],
                            VkPipeline *out, struct rwkv_error *err);
/* Whether `kernel` has a variant for `dtype` on this device (GEMV needs subgroups, GEMM_CM F16). */
int vk_kernel_available(const struct vk_dev *d, int kernel, enum rwkv_dtype dtype);
const char *vk_kernel_name(int kernel);
/* The driver's statistics of a pipeline ("Register Count 128, ..."), where d->pipe_stats; else "". */
void vk_pipeline_stats(struct vk_dev *d, VkPipeline pipe, char *buf, size_t n);
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

#define VK_MIX_MAX 6 /* LERPs one NORMMIX dispatch absorbs */

struct vk_op_kernel {
    int kernel;          /* enum vk_kernel_id, -1 for HOOK and for ops an earlier dispatch performs */
    VkPipeline pipeline;
    int n_parts;         /* dispatches: the parts of the matrix (MATMUL/EMBED), else 1 */
    int group_end;       /* the last op this dispatch performs (itself, or what NORMMIX absorbs) */
    VkPipeline mm[VK_MM_COUNT]; /* MATMUL: the variants the op qualifies for (else VK_NULL_HANDLE) */
    VkPipeline ksum;     /* MATMUL with tensor-core variants: the split-K sums (ksum.comp) */
    VkPipeline mm_split[VK_MM_COUNT]; /* the tensor-core variants that may be split along K */
    VkPipeline one;      /* WKV7, NORMMIX: the variant for one token per segment (VK_NULL_HANDLE: none) */
    uint32_t one_split;  /* NORMMIX: workgroups per row of that variant */
    VkPipeline lora;     /* WKV7: the one-token variant absorbing lora_ops (VK_NULL_HANDLE: none) */
    VkPipeline sparse;   /* MATMUL after a ReLU^2 MATMUL, with RWKV_VK_SPARSE_FFN=1: one token over W^T... */
    struct vk_span wt;   /* ...skipping zero inputs (gemv_sparse.comp); W^T [K][N] F16 in the model's pool */
    VkPipeline rows, norm; /* WKV7: the split over rows and its GroupNorm pass (VK_NULL_HANDLE: none) */
    uint32_t rows_p;     /* WKV7 with `rows`: invocations per state row = workgroups per (segment, head) */
    int lora_ops[4];     /* WKV7 with `lora`: its w2, a2, g2, v2 MATMULs (v2 -1 where the layer has none) */
    int absorbed_by;     /* MATMUL: the WKV7 op whose `lora` variant performs it, or -1 */
    uint32_t gemv_rows;  /* MATMUL: rows per GEMV workgroup (fewer for longer rows: gemv.comp) */
    /* NORMMIX: the absorbed SHIFT (-1: none) and LERPs (-1), the flags of normmix.comp, and its
     * parameters [2 + VK_MIX_MAX][C] (ln weight, ln bias, each LERP's mix or zeros). MATMUL:
     * lerp_op[0] is the absorbed LERP (its dyn input is this op's output), or -1. */
    int shift_op, lerp_op[VK_MIX_MAX];
    uint32_t mix_flags;
    struct vk_span params;
    /* chunks of one token (d->mix_fuse): NORMMIX with `mix_fused` is not dispatched; each MATMUL reading
     * one of its LERPs (mix_src: the NORMMIX op, mix_j: which) makes that input itself (gemv_mix); the
     * first of them (mix_xx) also writes the norm's output, which a SHIFT dispatch (shift_store) then
     * stores in the state once they all ran */
    int mix_fused, mix_src, mix_j, mix_xx;
    int mix_dispatches;  /* NORMMIX with `mix_fused`: its consumers' dispatches (the store waits for them) */
    uint32_t mix_rows, mix_groups; /* MATMUL with gemv_mix: rows per workgroup (a subgroup each), workgroups */
    VkPipeline gemv_mix, shift_store;
};

/* token7.comp (vk_token.c): the table's words, those of the state left 0 until a state fills them */
#define VK_TOKEN_MODEL_BLOCKS 24 /* binding 0's array: the model pool's blocks (more: not used)... */
#define VK_TOKEN_MODEL_BLOCKS_BIG 60 /* ...or this many where the device allows 64+ buffers per stage */
#define VK_TOKEN_ACT_BLOCKS 4    /* binding 1's array: the state pool's blocks */
#define VK_TOKEN_MAX_GROUPS 1024
struct vk_token_model {
    VkPipeline pipeline;     /* VK_NULL_HANDLE: the model does not qualify */
    uint32_t *words;         /* the table, with the model's references filled in */
    size_t n_words;
};

struct vk_model {
    struct vk_pool pool;
    struct vk_tensor *w;     /* [n_weights] */
    struct vk_op_kernel *ok; /* [n_ops] */
    struct vk_token_model token;
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
    VkDescriptorSet set_lora; /* WKV7 with a `lora` variant: that kernel's bindings */
    VkDescriptorSet set_sparse; /* MATMUL with a `sparse` variant: W^T in place of W */
    VkDescriptorSet set_mix;    /* MATMUL with `gemv_mix`: its bindings; NORMMIX with `mix_fused`: the SHIFT's */
};

/* A recorded chunk: replayed while chunks keep its shape (tokens, segments, logits rows), since
 * everything else a chunk changes lives in buffers. */
struct vk_rec {
    struct vk_cmd cmd;
    int token;          /* recorded as one token7.comp dispatch */
    int T, S, R;
    int soft;           /* some row asked for probabilities */
    int valid;
    unsigned long last_use;
};
#define VK_RECS 4

/* RWKV_VK_PROFILE: GPU time by kernel and matrix shape, per chunk size, printed when the state is
 * freed. */
struct vk_prof_entry {
    char name[64];
    int T;              /* the chunk's tokens */
    double ns;
    long calls;
};
struct vk_prof_chunk {  /* the runs of chunks of T tokens */
    int T;
    long runs;
    double gpu_ns, wall_ns, wait_ns; /* wait: in vkWaitForFences (the rest of wall is host work) */
    double copy_ns;                   /* of the host work: copying the logits out */
    int dispatches, barriers;         /* of a recording */
};
#define VK_PROF_CHUNKS 8
struct vk_prof {
    struct vk_timer timer;
    char (*names)[64];  /* [timer.cap] label of each mark */
    double *ns;         /* [timer.cap] */
    struct vk_prof_entry *e;
    int n_e, cap_e;
    struct vk_prof_chunk chunks[VK_PROF_CHUNKS];
    int n_chunks;
};

struct vk_state {
    struct vk_pool act;        /* runtime buffers, the chunk table, the state regions */
    struct vk_span bufs[RWKV_MAX_BUFFERS];
    struct vk_pool table;      /* the chunk table where the host can write device memory, else unused */
    struct vk_span chunk;      /* in `table` when it has a block, else in `act` (written by a copy) */
    struct vk_region *regions;
    int n_regions;
    int *op_region;            /* [n_ops] region of SHIFT/WKV ops, else -1 */
    int out_tile;              /* logits rows per pass over the per-output ops */
    int first_out_op;          /* first per-output op (n_ops when none) */
    struct vk_pool up, down;   /* staging: chunk table and state writes; logits and state reads */
    size_t down_state;         /* where state reads start in `down` (the logits rows come first) */
    struct vk_span scratch;    /* split-K partial sums (scratch.size 0: none) */
    VkPipeline softmax;        /* softmax.comp over the logits buffer, with its set */
    VkDescriptorSet softmax_set;
    size_t chunk_words;
    VkDescriptorPool desc_pool;
    struct vk_dispatch *disp;
    int n_disp;
    struct vk_cmd cmd;         /* state transfers */
    struct vk_rec recs[VK_RECS];
    unsigned long uses;
    struct vk_prof *prof;      /* RWKV_VK_PROFILE only */
    struct rwkv_pool *copy_pool; /* threads copying large readbacks out (made on first need) */
    int copy_pool_failed;
    /* chunks with hooks (vk_exec.c): run in pieces, not recorded for replay */
    struct vk_dispatch *prog;  /* [n_disp] the dispatches in program order */
    uint8_t *hook_inside;      /* [n_ops] 1: a HOOK op inside a fused dispatch's group */
    struct vk_cmd hook_cmd;
    struct vk_pool hook_stage; /* host-visible: a hooked tensor's rows (made on first need) */
    float *hook_copy;          /* the rows as read, to see whether a hook changed them */
    size_t hook_bytes;         /* the capacity of both */
    /* token7.comp (vk_token.c): its table and scratch vectors in `act`, its barrier's words in `table` */
    struct vk_span token_tab, token_scratch, token_sync;
    double token_prof[12];     /* token_clock: workgroup 0's ns per phase kind, working and waiting... */
    long token_runs;           /* ...summed over this many runs */
    VkDescriptorPool token_pool;
    VkDescriptorSet token_set; /* VK_NULL_HANDLE: this state runs no step in one dispatch */
};

/* The pool holding the chunk table: `table` where the host writes it into device memory directly. */
static inline const struct vk_pool *vk_table_pool(const struct vk_state *vs)
{
    return vs->table.n_blocks ? &vs->table : &vs->act;
}

/* vk_token.c: a whole v7 generation step of one sequence in one dispatch (token7.comp) */
/* At model upload: whether the model qualifies, its pipeline and table (no error: it then runs by ops). */
rwkv_status vk_token_model_init(const struct rwkv_model *m, struct vk_model *vm, struct rwkv_error *err);
void vk_token_model_free(struct vk_model *vm);
/* In plan_buffers, before the pools are committed: the state's spans. */
rwkv_status vk_token_reserve(const struct rwkv_state *s, struct vk_state *vs, struct rwkv_error *err);
/* After the pools are committed: the table uploaded and the descriptor set. */
rwkv_status vk_token_state_init(struct rwkv_state *s, struct rwkv_error *err);
void vk_token_state_free(struct vk_dev *d, struct vk_state *vs);
/* Whether `c` runs as one token7.comp dispatch. */
int vk_token_applies(const struct rwkv_state *s, const struct rwkv_chunk *c);
/* Records it (the logits row then goes through record_logits_tile's path: vk_exec.c). */
void vk_token_record(const struct rwkv_state *s, const struct rwkv_chunk *c, VkCommandBuffer cb);
/* Before a submission: the barrier's words zeroed. After: whether a barrier gave up (an error). */
void vk_token_arm(struct rwkv_state *s);
rwkv_status vk_token_check(struct rwkv_state *s, struct rwkv_error *err);
/* RWKV_VK_PROFILE: the phases' times (where the device has a shader clock), printed with the profile. */
void vk_token_prof_print(const struct rwkv_state *s);

/* vk_exec.c */
rwkv_status vk_run(struct rwkv_state *s, const struct rwkv_chunk *chunk, float *const *rows,
                   struct rwkv_error *err);
rwkv_status vk_exec_init(struct rwkv_state *s, struct rwkv_error *err);
void vk_exec_free(struct rwkv_state *s);
/* Chunk table layout (uint32 words): header, then tokens. Header words: offsets of tok_seg, seg_slot,
 * seg_start, seg_len, out_rows; after out_rows, each logits row's softmax flag. */
#define VK_CHUNK_HEADER 8

#endif
