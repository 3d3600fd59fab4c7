/* Minimal test helpers: checks that count failures, paths to ../shared, file and JSON loading. */
#ifndef RWKV_TESTUTIL_H
#define RWKV_TESTUTIL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "io/json.h"
#include "rwkv.h"

extern int tu_failures;
extern int tu_checks;

#define CHECK(cond)                                                                     \
    do {                                                                                \
        tu_checks++;                                                                    \
        if (!(cond)) {                                                                  \
            tu_failures++;                                                              \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);    \
        }                                                                               \
    } while (0)

#define CHECK_MSG(cond, ...)                                                            \
    do {                                                                                \
        tu_checks++;                                                                    \
        if (!(cond)) {                                                                  \
            tu_failures++;                                                              \
            fprintf(stderr, "%s:%d: CHECK failed: %s: ", __FILE__, __LINE__, #cond);    \
            fprintf(stderr, __VA_ARGS__);                                               \
            fputc('\n', stderr);                                                        \
        }                                                                               \
    } while (0)

/* Asserts that a call returned `code` and that the error message contains `needle`. */
#define CHECK_ERR(call, code, errp, needle) tu_check_err((call), (code), (errp), (needle), __FILE__, __LINE__)
void tu_check_err(rwkv_status got, rwkv_status want, const struct rwkv_error *err, const char *needle,
                  const char *file, int line);

/* Prints a summary and returns the process exit status (0 when nothing failed and something was checked). */
int tu_finish(const char *name);

/* Path under the shared folder ($RWKV_SHARED or ../shared): returns a static buffer (rotating, 8 slots). */
const char *tu_shared(const char *rel);
/* A path in the test scratch folder ($RWKV_TMP or /tmp), unique per process. Static rotating buffer. */
const char *tu_tmp(const char *name);
/* The rwkv CLI ($RWKV_CLI). */
const char *tu_cli(void);

/* Reads a whole file (malloc'ed, NUL-terminated); NULL on failure. */
char *tu_read_file(const char *path, size_t *len);
int tu_write_file(const char *path, const void *data, size_t len);
/* Parses a JSON file; aborts the test (exit 1) if it cannot, since test data must be present. */
struct json *tu_load_json(const char *path);

/* Reads a JSON array of numbers into a malloc'ed float/int array. */
float *tu_json_floats(const struct json *arr, size_t *n);
int32_t *tu_json_ints(const struct json *arr, size_t *n);

/* Runs a shell command, returns its exit status (-1 if it did not exit normally). */
int tu_system(const char *fmt, ...);

#endif
