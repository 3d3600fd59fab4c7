/* rwkv tokenize / rwkv detokenize: bytes <-> token ids through a vocabulary, stdin to stdout. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tools/cli.h"

static void usage(FILE *f, const char *cmd)
{
    int enc = strcmp(cmd, "tokenize") == 0;
    fprintf(f,
            "usage: rwkv %s [--vocab PATH | --bytes] < %s > %s\n"
            "  %s\n"
            "  --vocab PATH  rwkv_vocab_v20230424.txt, or web-rwkv's JSON vocabulary\n"
            "  --bytes       byte-level tokens, id = byte value (the default without --vocab)\n",
            cmd, enc ? "BYTES" : "IDS", enc ? "IDS" : "BYTES",
            enc ? "Reads bytes on stdin; prints their token ids, separated by spaces, and a newline."
                : "Reads decimal token ids separated by white space on stdin; writes their bytes.");
}

/* Parses the options shared by both commands, makes the tokenizer and reads stdin (malloc'ed, NUL
 * terminated). Returns -1 to go on, else the exit status. */
static int start(int argc, char **argv, struct rwkv_tokenizer **tok, char **input, size_t *n)
{
    const char *cmd = argv[0], *vocab = NULL;
    int bytes = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--vocab") == 0 && i + 1 < argc) {
            vocab = argv[++i];
        } else if (strcmp(argv[i], "--bytes") == 0) {
            bytes = 1;
        } else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout, cmd);
            return 0;
        } else {
            cli_error(cmd, "%s '%s' (rwkv %s --help shows the options)",
                      strcmp(argv[i], "--vocab") == 0 ? "missing path after" : "unknown option", argv[i], cmd);
            return 2;
        }
    }
    if (vocab && bytes) {
        cli_error(cmd, "--vocab and --bytes exclude each other");
        return 2;
    }
    struct rwkv_error err;
    if (vocab ? rwkv_tokenizer_load(vocab, tok, &err) : rwkv_tokenizer_new_bytes(tok, &err)) {
        cli_error(cmd, "%s", err.message);
        return 1;
    }
    *input = (char *)cli_read_stdin(n);
    if (!*input) {
        cli_error(cmd, "cannot read stdin");
        rwkv_tokenizer_free(*tok);
        return 1;
    }
    return -1;
}

/* Flushes stdout; a full disk or closed pipe is a runtime error, not silent truncation. */
static int finish_output(const char *cmd)
{
    if (fflush(stdout) != 0 || ferror(stdout)) {
        cli_error(cmd, "cannot write to stdout");
        return 1;
    }
    return 0;
}

int cmd_tokenize(int argc, char **argv)
{
    struct rwkv_tokenizer *tok = NULL;
    char *text = NULL;
    size_t n, n_ids;
    int rc = start(argc, argv, &tok, &text, &n);
    if (rc >= 0)
        return rc;
    int32_t *ids = NULL;
    struct rwkv_error err;
    if (rwkv_tokenizer_encode(tok, (const uint8_t *)text, n, &ids, &n_ids, &err)) {
        cli_error(argv[0], "%s", err.message);
        rc = 1;
    } else {
        for (size_t i = 0; i < n_ids; i++)
            printf(i ? " %d" : "%d", (int)ids[i]);
        putchar('\n');
        rc = finish_output(argv[0]);
    }
    free(ids);
    free(text);
    rwkv_tokenizer_free(tok);
    return rc;
}

/* White-space separated decimal ids; on a bad one, says which and where. Returns 1 on success. */
static int parse_id_list(const char *cmd, const char *s, int32_t **out, size_t *n_out)
{
    size_t cap = 64, n = 0;
    int32_t *ids = malloc(cap * sizeof *ids);
    if (!ids) {
        cli_error(cmd, "out of memory");
        return 0;
    }
    for (const char *p = s;;) {
        while (isspace((unsigned char)*p))
            p++;
        if (!*p)
            break;
        const char *start = p;
        long long v = 0;
        while (*p >= '0' && *p <= '9' && v <= INT32_MAX)
            v = v * 10 + (*p++ - '0');
        if (p == start || v > INT32_MAX || (*p && !isspace((unsigned char)*p))) {
            int len = 0;
            while (start[len] && !isspace((unsigned char)start[len]) && len < 24)
                len++;
            cli_error(cmd, "bad token id '%.*s' at byte %zu of stdin (want decimal ids up to 2147483647)", len,
                      start, (size_t)(start - s));
            free(ids);
            return 0;
        }
        if (n == cap) {
            int32_t *grown = realloc(ids, 2 * cap * sizeof *ids);
            if (!grown) {
                cli_error(cmd, "out of memory");
                free(ids);
                return 0;
            }
            ids = grown;
            cap *= 2;
        }
        ids[n++] = (int32_t)v;
    }
    *out = ids;
    *n_out = n;
    return 1;
}

int cmd_detokenize(int argc, char **argv)
{
    struct rwkv_tokenizer *tok = NULL;
    char *text = NULL;
    size_t n, n_ids, n_bytes;
    int rc = start(argc, argv, &tok, &text, &n);
    if (rc >= 0)
        return rc;
    int32_t *ids = NULL;
    uint8_t *bytes = NULL;
    struct rwkv_error err;
    rc = 1;
    if (strlen(text) != n) {
        cli_error(argv[0], "NUL byte at byte %zu of stdin (want decimal ids)", strlen(text));
    } else if (!parse_id_list(argv[0], text, &ids, &n_ids)) {
        /* reported */
    } else if (rwkv_tokenizer_decode(tok, ids, n_ids, &bytes, &n_bytes, &err)) {
        cli_error(argv[0], "%s", err.message);
    } else {
        fwrite(bytes, 1, n_bytes, stdout);
        rc = finish_output(argv[0]);
    }
    free(bytes);
    free(ids);
    free(text);
    rwkv_tokenizer_free(tok);
    return rc;
}
