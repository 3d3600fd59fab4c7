/* The backend interface: a struct of function pointers plus private context per device, model and
 * state (ggml's model). Backends execute the model's layer program; they do not re-implement models. */
#ifndef RWKV_BACKEND_BACKEND_H
#define RWKV_BACKEND_BACKEND_H

#include <stddef.h>
#include <stdint.h>

#include "model/model.h"
#include "rwkv.h"

/* One chunk of work: tokens of several slots, each slot's tokens contiguous (a segment). */
struct rwkv_chunk {
    int n_tokens;             /* T >= 1 */
    const int32_t *tokens;    /* [T], checked < n_vocab */
    int n_seg;
    const int32_t *seg_slot;  /* [n_seg] state slot of each segment (distinct) */
    const int32_t *seg_start; /* [n_seg] first token index: segments in token order, back to back (the
                               * Vulkan kernels rely on it: T == n_seg means token s is segment s) */
    const int32_t *seg_len;   /* [n_seg] >= 1 */
    int n_out;                /* R: logits rows requested (0 allowed) */
    const int32_t *out_rows;  /* [R] token indices, increasing */
    const int32_t *token_slot; /* [T] slot of each token (for hooks) */
    const int32_t *out_slot;   /* [R] slot of each logits row */
    const uint8_t *out_softmax; /* [R] 1: the row is to be softmax probabilities */
    int any_softmax;            /* some out_softmax[r] is 1 */
};

struct rwkv_hook {
    char point[32];
    int layer;
    rwkv_hook_fn fn;
    void *user;
};

struct rwkv_backend_ops {
    const char *name;
    int supports_hooks;
    int softmax;         /* run() applies out_softmax itself; else the runner does it on the host */
    rwkv_status (*device_open)(struct rwkv_device *dev, struct rwkv_error *err);
    void (*device_free)(struct rwkv_device *dev);
    /* Takes what it needs from model->weights (upload); may not keep pointers beyond model lifetime. */
    rwkv_status (*model_init)(struct rwkv_model *model, struct rwkv_error *err);
    void (*model_free)(struct rwkv_model *model);
    /* Allocates state->backend: num_batch slots of state and scratch for token_chunk_size tokens. */
    rwkv_status (*state_init)(struct rwkv_state *state, struct rwkv_error *err);
    void (*state_free)(struct rwkv_state *state);
    rwkv_status (*state_read)(const struct rwkv_state *state, int slot, float *dst, struct rwkv_error *err);
    rwkv_status (*state_write)(struct rwkv_state *state, int slot, const float *src, struct rwkv_error *err);
    rwkv_status (*state_copy)(struct rwkv_state *state, int src, int dst, struct rwkv_error *err);
    /* Runs the program over one chunk; writes logits row r (n_vocab floats) to rows[r], r < n_out. */
    rwkv_status (*run)(struct rwkv_state *state, const struct rwkv_chunk *chunk, float *const *rows,
                       struct rwkv_error *err);
    /* Host memory the backend reads logits back into, `token_chunk_size` rows: run() skips copying row r
     * where rows[r] already points at row r there (rwkv_state_logits_area). Optional (NULL: the runner
     * allocates an area of its own). */
    float *(*logits_area)(struct rwkv_state *state);
    /* (bytes read + written) / s of a buffer-to-buffer copy in the device's memory, in GB/s. Optional. */
    rwkv_status (*copy_bandwidth)(struct rwkv_device *dev, size_t bytes, double *gbps, struct rwkv_error *err);
};

struct rwkv_device {
    const struct rwkv_backend_ops *ops;
    struct rwkv_device_options options;
    char description[256];
    void *priv; /* backend's */
};

struct rwkv_backend_state;

struct rwkv_state {
    const struct rwkv_model *model;
    int num_batch;
    int token_chunk_size;
    void *priv;           /* backend's */
    /* chunk planner scratch, sized at creation so that rwkv_run allocates nothing */
    int32_t *tokens;      /* [token_chunk_size] */
    int32_t *seg_slot, *seg_start, *seg_len; /* [num_batch] */
    int32_t *out_rows;    /* [token_chunk_size] */
    float **out_ptrs;     /* [token_chunk_size] destination of each logits row */
    size_t *take;         /* [num_batch] tokens per slot in the current chunk */
    unsigned round_robin; /* which slot gets leftover tokens first */
    int32_t *token_slot;  /* [token_chunk_size] */
    int32_t *out_slot;    /* [token_chunk_size] */
    uint8_t *out_softmax; /* [token_chunk_size] */
    struct rwkv_hook *hooks;
    int n_hooks;
    struct rwkv_run_stats stats; /* wait_seconds is added by the backend */
    float *own_logits;           /* rwkv_state_logits_area where the backend has none */
};

static inline const struct rwkv_backend_ops *rwkv_backend_of(const struct rwkv_device *dev)
{
    return dev->ops;
}

extern const struct rwkv_backend_ops rwkv_cpu_backend;
#ifdef RWKV_HAVE_VULKAN
extern const struct rwkv_backend_ops rwkv_vulkan_backend;
#endif

/* The initial state of one slot (zeros; v4 pp = -1e30): fills `dst` (state_floats). */
void rwkv_state_initial(const struct rwkv_model *model, float *dst);
/* Whether some hook of the state matches HOOK op `op` (its point, or "*"; its layer, or -1). */
int rwkv_hooks_match(const struct rwkv_state *s, const struct rwkv_op *op);
/* Calls the state's hooks matching HOOK op `op`, in the order added, on rows x width floats (row r at
 * data + r * stride, of state slot row_slot[r]); returns non-zero when one asks to stop. */
int rwkv_hooks_call(struct rwkv_state *s, const struct rwkv_op *op, float *data, size_t rows, size_t width,
                    size_t stride, const int32_t *row_slot);

#endif
