/* The `rwkv` command-line program: one function per subcommand, and shared argument helpers. */
#ifndef RWKV_TOOLS_CLI_H
#define RWKV_TOOLS_CLI_H

#include <stddef.h>
#include <stdint.h>

#include "rwkv.h"

/* Each subcommand gets argv after the subcommand name (argv[0] = subcommand) and returns the exit
 * status: 0 success, 1 runtime error, 2 usage error. Errors are one line on stderr: "rwkv NAME: ...". */
int cmd_logits(int argc, char **argv);
int cmd_tokenize(int argc, char **argv);
int cmd_detokenize(int argc, char **argv);
int cmd_gen(int argc, char **argv);
int cmd_batch(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_info(int argc, char **argv);
int cmd_synth(int argc, char **argv);
int cmd_convert(int argc, char **argv);
int cmd_save(int argc, char **argv);
int cmd_devices(int argc, char **argv);

/* Prints "rwkv CMD: message\n" to stderr. */
void cli_error(const char *cmd, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/* Strict number parsing: the whole string must be a number in range. Return 1 on success. */
int cli_parse_int(const char *s, long min, long max, long *out);
int cli_parse_float(const char *s, float *out);
/* "1,2,3" -> malloc'ed ids (decimal, each in [0, INT32_MAX]); empty list allowed. Returns 1 on success. */
int cli_parse_ids(const char *s, int32_t **ids, size_t *n);
/* "cpu" | "vulkan" | "auto" */
int cli_parse_backend(const char *s, enum rwkv_backend *out);

/* Reads all of stdin (malloc'ed). Returns NULL on failure. */
uint8_t *cli_read_stdin(size_t *n);

#endif
