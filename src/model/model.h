/* The loaded model: weights (one table, referenced by index) and the layer program that runs them. */
#ifndef RWKV_MODEL_MODEL_H
#define RWKV_MODEL_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "io/tensor_table.h"
#include "model/program.h"
#include "rwkv.h"

/* A weight as the model holds it. Vectors (per-channel parameters) are always F32 and already
 * transformed to what the ops use (e.g. v4 decay = -exp(time_decay)); matrices keep their precision. */
struct rwkv_weight {
    char *name;          /* owned; the file's name, or a derived one ("blocks.3.att.time_decay:w") */
    enum rwkv_dtype dtype;
    int ndim;
    int64_t shape[RWKV_MAX_DIMS];
    const void *data;    /* into the file mapping (zero-copy) or `owned` */
    void *owned;         /* NULL when data points into the mapping */
    size_t nbytes;
};

/* Matrix shorthand: rows = shape[0] (outputs), cols = shape[1] (inputs), row-major. */
static inline int64_t rwkv_weight_rows(const struct rwkv_weight *w) { return w->shape[0]; }
static inline int64_t rwkv_weight_cols(const struct rwkv_weight *w) { return w->ndim > 1 ? w->shape[1] : 1; }

struct rwkv_backend_model; /* backend-private copy of the weights (device buffers) */

struct rwkv_model {
    struct rwkv_device *device;
    struct rwkv_model_info info;
    struct rwkv_weight *weights; /* [n_weights] */
    int n_weights;
    struct rwkv_program program;
    struct rwkv_tensor_table file; /* kept open while weights point into its mapping */
    struct rwkv_backend_model *backend;
};

/* Builds a model from an open table (takes ownership of the table on success and on failure). */
rwkv_status rwkv_model_build(struct rwkv_device *device, struct rwkv_tensor_table *table,
                             const struct rwkv_model_options *options, struct rwkv_model **out,
                             struct rwkv_error *err);

/* Detects the architecture from tensor names and shapes. */
rwkv_status rwkv_detect_arch(const struct rwkv_tensor_table *t, enum rwkv_arch *arch, struct rwkv_error *err);

#endif
