/* Error reporting helpers shared by every module. */
#ifndef RWKV_CORE_ERROR_H
#define RWKV_CORE_ERROR_H

#include "rwkv.h"

#if defined(__GNUC__)
#define RWKV_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define RWKV_PRINTF(a, b)
#endif

/* Fills *err (when not NULL) with `code` and a formatted message; returns `code` so that callers can
 * write `return rwkv_fail(err, RWKV_ERR_FORMAT, "%s: ...", path);`. */
rwkv_status rwkv_fail(struct rwkv_error *err, rwkv_status code, const char *fmt, ...) RWKV_PRINTF(3, 4);

/* Prepends "prefix: " to an existing message (adds context on the way up). Returns err->code. */
rwkv_status rwkv_error_prefix(struct rwkv_error *err, const char *fmt, ...) RWKV_PRINTF(2, 3);

static inline void rwkv_error_clear(struct rwkv_error *err)
{
    if (err) {
        err->code = RWKV_OK;
        err->message[0] = '\0';
    }
}

/* Overflow-checked size arithmetic: return 0 on overflow, 1 otherwise. */
static inline int rwkv_mul_size(size_t a, size_t b, size_t *out)
{
    if (a != 0 && b > (size_t)-1 / a)
        return 0;
    *out = a * b;
    return 1;
}

static inline int rwkv_add_size(size_t a, size_t b, size_t *out)
{
    if (b > (size_t)-1 - a)
        return 0;
    *out = a + b;
    return 1;
}

/* strdup is POSIX, not C11. Returns NULL when out of memory. */
char *rwkv_strdup(const char *s);

#endif
