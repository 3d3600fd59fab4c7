/* A small strict JSON reader (RFC 8259) building a tree. Limits on depth and size; every error names
 * the byte offset. Strings are decoded to UTF-8 (\uXXXX escapes and surrogate pairs included). */
#ifndef RWKV_IO_JSON_H
#define RWKV_IO_JSON_H

#include <stddef.h>
#include <stdint.h>

#include "rwkv.h"

enum json_type { JSON_NULL, JSON_BOOL, JSON_NUMBER, JSON_STRING, JSON_ARRAY, JSON_OBJECT };

struct json {
    enum json_type type;
    double number;       /* JSON_NUMBER, also JSON_BOOL (0/1) */
    char *string;        /* JSON_STRING: decoded, NUL-terminated (may contain NULs: see len) */
    size_t len;          /* string length in bytes, or element count of an array/object */
    struct json *items;  /* array elements or object values */
    char **keys;         /* object keys (decoded), parallel to items */
    size_t *key_lens;
};

/* Parses `n` bytes. On success *out is a tree to free with json_free. `what` names the input in errors. */
rwkv_status json_parse(const char *text, size_t n, const char *what, struct json **out, struct rwkv_error *err);
void json_free(struct json *j);

const struct json *json_get(const struct json *obj, const char *key); /* NULL if absent / not object */
int json_is_int(const struct json *j, int64_t *out);                  /* integral number in int64 range */

#endif
