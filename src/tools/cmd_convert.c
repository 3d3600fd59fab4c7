/* rwkv convert: an official PyTorch checkpoint (.pth) -> web-rwkv safetensors (.st). */
#include <stdio.h>
#include <string.h>

#include "io/tensor_table.h"
#include "model/convert.h"
#include "tools/cli.h"

static void usage(FILE *f)
{
    fprintf(f, "usage: rwkv convert --in MODEL.pth --out MODEL.st [--dtype f16|f32|bf16]\n"
               "  Converts an RWKV v4-v7 PyTorch checkpoint (torch.save zip) to web-rwkv's layout, exactly as\n"
               "  web-rwkv's convert_safetensors.py does: renamed, LoRA-style matrices transposed, v5.1 decay\n"
               "  expanded per channel, tensors sorted by name.\n"
               "  --dtype  f16 (the default, what web-rwkv reads), or f32/bf16 for other readers\n");
}

static int parse_dtype(const char *s, enum rwkv_dtype *out)
{
    static const struct {
        const char *name;
        enum rwkv_dtype dtype;
    } names[] = {{"f16", RWKV_DTYPE_F16}, {"f32", RWKV_DTYPE_F32}, {"bf16", RWKV_DTYPE_BF16}};
    for (size_t i = 0; s && i < sizeof names / sizeof names[0]; i++)
        if (strcmp(s, names[i].name) == 0) {
            *out = names[i].dtype;
            return 1;
        }
    return 0;
}

/* Returns -1 when the options are complete, else the exit status (0 for --help, 2 for misuse). */
static int parse_args(int argc, char **argv, const char **in, const char **out, enum rwkv_dtype *dtype)
{
    const char *cmd = argv[0];
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            return 0;
        }
        if (strcmp(a, "--in") != 0 && strcmp(a, "--out") != 0 && strcmp(a, "--dtype") != 0) {
            cli_error(cmd, "unknown option '%s' (rwkv convert --help shows the options)", a);
            return 2;
        }
        if (!v) {
            cli_error(cmd, "missing value after %s", a);
            return 2;
        }
        i++;
        if (strcmp(a, "--in") == 0)
            *in = v;
        else if (strcmp(a, "--out") == 0)
            *out = v;
        else if (!parse_dtype(v, dtype)) {
            cli_error(cmd, "--dtype '%s': expected f16, f32 or bf16", v);
            return 2;
        }
    }
    if (!*in || !*out) {
        cli_error(cmd, "--in and --out are required (rwkv convert --help shows the options)");
        return 2;
    }
    return -1;
}

int cmd_convert(int argc, char **argv)
{
    const char *cmd = argv[0], *in_path = NULL, *out_path = NULL;
    enum rwkv_dtype dtype = RWKV_DTYPE_F16;
    int rc = parse_args(argc, argv, &in_path, &out_path, &dtype);
    if (rc >= 0)
        return rc;
    struct rwkv_tensor_table in, out;
    struct rwkv_error err;
    if (rwkv_pth_open(in_path, &in, &err)) {
        cli_error(cmd, "%s", err.message);
        return 1;
    }
    rc = 1;
    if (rwkv_convert_to_webrwkv(&in, dtype, &out, &err) ||
        rwkv_safetensors_write(out_path, out.tensors, out.n_tensors, out.meta, out.n_meta, &err)) {
        cli_error(cmd, "%s", err.message);
    } else {
        printf("%s: %zu tensors (%s) -> %s\n", in_path, out.n_tensors, rwkv_dtype_name(dtype), out_path);
        rc = 0;
    }
    rwkv_table_free(&out); /* a failed conversion leaves `out` empty */
    rwkv_table_free(&in);
    return rc;
}
