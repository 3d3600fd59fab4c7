/* A table of named tensors read from a file (safetensors, PyTorch .pth): the common currency between
 * the file readers and the model builder. Tensors are contiguous, row-major, little endian. */
#ifndef RWKV_IO_TENSOR_TABLE_H
#define RWKV_IO_TENSOR_TABLE_H

#include <stddef.h>
#include <stdint.h>

#include "core/platform.h"
#include "rwkv.h"

#define RWKV_MAX_DIMS 4

struct rwkv_tensor {
    char *name;             /* owned */
    enum rwkv_dtype dtype;
    int ndim;               /* 0..RWKV_MAX_DIMS */
    int64_t shape[RWKV_MAX_DIMS];
    const uint8_t *data;    /* points into the table's mapping or an owned buffer; may be unaligned */
    size_t nbytes;          /* = element count * dtype size (checked by the reader) */
};

struct rwkv_meta {
    char *key, *value;      /* owned */
};

struct rwkv_tensor_table {
    char *path;             /* owned copy, for messages */
    struct rwkv_tensor *tensors;
    size_t n_tensors;
    struct rwkv_meta *meta; /* safetensors __metadata__ string pairs */
    size_t n_meta;
    struct rwkv_file_map map;
    void **owned;           /* extra buffers freed with the table (e.g. de-strided pth tensors) */
    size_t n_owned;
};

/* Index of the tensor named `name`, or -1. */
long rwkv_table_find(const struct rwkv_tensor_table *t, const char *name);
const struct rwkv_tensor *rwkv_table_get(const struct rwkv_tensor_table *t, const char *name);
const char *rwkv_table_meta(const struct rwkv_tensor_table *t, const char *key);
int64_t rwkv_tensor_numel(const struct rwkv_tensor *t);
void rwkv_table_free(struct rwkv_tensor_table *t);

/* Maps `path` into a fresh table and fills it with `parse`; on failure the table is freed. */
typedef rwkv_status (*rwkv_table_parse_fn)(struct rwkv_tensor_table *t, struct rwkv_error *err);
rwkv_status rwkv_table_open_with(const char *path, rwkv_table_parse_fn parse, struct rwkv_tensor_table *out,
                                 struct rwkv_error *err);

/* Reads any supported file by its content: safetensors or a PyTorch zip checkpoint. */
rwkv_status rwkv_table_open(const char *path, struct rwkv_tensor_table *out, struct rwkv_error *err);

/* safetensors.c: parse from a mapping already in `out->map` (used by tests and fuzzers on memory). */
rwkv_status rwkv_safetensors_open(const char *path, struct rwkv_tensor_table *out, struct rwkv_error *err);
rwkv_status rwkv_safetensors_parse(struct rwkv_tensor_table *t, struct rwkv_error *err);

/* pth.c: PyTorch zip checkpoints (torch.save of a state dict). */
rwkv_status rwkv_pth_open(const char *path, struct rwkv_tensor_table *out, struct rwkv_error *err);
rwkv_status rwkv_pth_parse(struct rwkv_tensor_table *t, struct rwkv_error *err);

/* Writes tensors as safetensors (atomically). `meta` may be NULL. Tensors are written in the given
 * order, data aligned to 8 bytes from the start of the data section. */
rwkv_status rwkv_safetensors_write(const char *path, const struct rwkv_tensor *tensors, size_t n,
                                   const struct rwkv_meta *meta, size_t n_meta, struct rwkv_error *err);

/* Element i of a tensor as float (F32/F16/BF16/I8/U8). */
float rwkv_tensor_get_f32(const struct rwkv_tensor *t, size_t i);

#endif
