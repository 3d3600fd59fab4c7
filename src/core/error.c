#include "core/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

rwkv_status rwkv_fail(struct rwkv_error *err, rwkv_status code, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->message, sizeof err->message, fmt, ap);
        va_end(ap);
        err->code = code;
    }
    return code;
}

rwkv_status rwkv_error_prefix(struct rwkv_error *err, const char *fmt, ...)
{
    if (!err)
        return RWKV_ERR_ARG;
    char prefix[256];
    char old[sizeof err->message];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, err->message, sizeof old);
    snprintf(err->message, sizeof err->message, "%s: %s", prefix, old);
    return err->code;
}

const char *rwkv_status_name(rwkv_status code)
{
    switch (code) {
    case RWKV_OK: return "RWKV_OK";
    case RWKV_ERR_ARG: return "RWKV_ERR_ARG";
    case RWKV_ERR_IO: return "RWKV_ERR_IO";
    case RWKV_ERR_FORMAT: return "RWKV_ERR_FORMAT";
    case RWKV_ERR_MODEL: return "RWKV_ERR_MODEL";
    case RWKV_ERR_NOMEM: return "RWKV_ERR_NOMEM";
    case RWKV_ERR_UNSUPPORTED: return "RWKV_ERR_UNSUPPORTED";
    case RWKV_ERR_DEVICE: return "RWKV_ERR_DEVICE";
    case RWKV_ERR_TOKEN: return "RWKV_ERR_TOKEN";
    case RWKV_ERR_MISMATCH: return "RWKV_ERR_MISMATCH";
    }
    return "RWKV_ERR_UNKNOWN";
}

char *rwkv_strdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d)
        memcpy(d, s, n);
    return d;
}
