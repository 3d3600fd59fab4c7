/* Shared by the file-reader fuzz targets: runs a parser on a table that owns a copy of the input (as
 * if read from a file without mmap), touches every tensor byte it accepted, and frees the table. A
 * failure must come with a message; with `one_line`, a message without control characters. */
#ifndef RWKV_FUZZ_TABLE_H
#define RWKV_FUZZ_TABLE_H

#include <stdlib.h>
#include <string.h>

#include "io/tensor_table.h"

typedef rwkv_status (*fuzz_parser)(struct rwkv_tensor_table *t, struct rwkv_error *err);

/* A table owning a copy of the input, as if read from a file without mmap. Returns 0 when out of memory. */
static inline int fuzz_table(const uint8_t *data, size_t size, struct rwkv_tensor_table *t)
{
    memset(t, 0, sizeof *t);
    uint8_t *copy = malloc(size ? size : 1);
    t->path = malloc(sizeof "fuzz");
    if (!copy || !t->path) {
        free(copy);
        free(t->path);
        return 0;
    }
    memcpy(copy, data, size);
    strcpy(t->path, "fuzz");
    t->map.data = copy;
    t->map.size = size;
    t->map.mapped = 0; /* rwkv_table_free frees the copy */
    return 1;
}

static inline void fuzz_parse(const uint8_t *data, size_t size, fuzz_parser parse, int one_line)
{
    struct rwkv_tensor_table t;
    struct rwkv_error err;
    if (!fuzz_table(data, size, &t))
        return;
    if (parse(&t, &err) == RWKV_OK) {
        /* every accepted byte must be readable: ASan reports it otherwise */
        volatile uint8_t sink = 0;
        for (size_t i = 0; i < t.n_tensors; i++) {
            const struct rwkv_tensor *x = &t.tensors[i];
            if ((size_t)rwkv_tensor_numel(x) * rwkv_dtype_size(x->dtype) != x->nbytes)
                abort(); /* a reader broke its own contract */
            for (size_t k = 0; k < x->nbytes; k++)
                sink ^= x->data[k];
        }
        (void)sink;
    } else {
        if (err.message[0] == '\0')
            abort(); /* failures must say why */
        for (const char *c = err.message; one_line && *c; c++)
            if ((unsigned char)*c < 0x20)
                abort(); /* a name from the file broke the one-line message */
    }
    rwkv_table_free(&t);
}

#endif
