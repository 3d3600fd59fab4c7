/* Small platform shims: whole-file mapping (mmap, or a plain read where mmap is unavailable), a clock,
 * the core count, and a fixed thread pool (pthreads, or inline execution without them). */
#ifndef RWKV_CORE_PLATFORM_H
#define RWKV_CORE_PLATFORM_H

#include <stddef.h>
#include <stdint.h>

#include "rwkv.h"

struct rwkv_file_map {
    const uint8_t *data;
    size_t size;
    int mapped; /* 1: mmap'ed, 0: malloc'ed copy */
};

/* Maps `path` read-only. An empty file gives data == NULL, size 0. */
rwkv_status rwkv_map_file(const char *path, struct rwkv_file_map *map, struct rwkv_error *err);
void rwkv_unmap_file(struct rwkv_file_map *map);

/* Writes `size` bytes to `path` through `path.tmp` + rename: the file is complete or untouched. */
rwkv_status rwkv_write_file_atomic(const char *path, const void *const *parts, const size_t *sizes,
                                   size_t n_parts, struct rwkv_error *err);

double rwkv_time_seconds(void); /* monotonic */
int rwkv_cpu_count(void);

/* Thread pool: rwkv_pool_run calls fn(ctx, i, n) for i in [0, n) on n threads (the caller is one of
 * them) and returns when all are done. */
struct rwkv_pool;
typedef void (*rwkv_pool_fn)(void *ctx, int index, int count);

rwkv_status rwkv_pool_new(int n_threads, struct rwkv_pool **out, struct rwkv_error *err);
void rwkv_pool_free(struct rwkv_pool *pool);
int rwkv_pool_size(const struct rwkv_pool *pool);
void rwkv_pool_run(struct rwkv_pool *pool, rwkv_pool_fn fn, void *ctx);

#endif
