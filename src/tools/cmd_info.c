/* rwkv info: what a model file holds, as the engine sees it after loading (version, dimensions, sizes),
 * and what the file itself holds (tensor dtypes, metadata, size). */
#include <stdio.h>
#include <string.h>

#include "io/tensor_table.h"
#include "tools/cli.h"
#include "tools/common.h"

static const char usage_text[] =
    "usage: rwkv info --model PATH [--lora FILE[:ALPHA]]... [--backend cpu|vulkan|auto]\n"
    "  Prints a model's version, dimensions (layers, embedding, heads x head size, FFN, vocabulary, LoRA\n"
    "  ranks), parameter count, dtypes, weight bytes, state size per slot and file size.\n"
    "  The model is loaded on the CPU unless --backend says otherwise. PATH may also be given alone.\n";

static void print_bytes(const char *label, double bytes)
{
    printf("%-14s %.0f bytes (%.2f MiB)\n", label, bytes, bytes / (1 << 20));
}

/* Counts and bytes per dtype, and the metadata, from the file's own table. */
static void print_file(const struct rwkv_tensor_table *t)
{
    size_t count[RWKV_DTYPE_COUNT] = {0};
    double bytes[RWKV_DTYPE_COUNT] = {0};
    for (size_t i = 0; i < t->n_tensors; i++) {
        enum rwkv_dtype d = t->tensors[i].dtype;
        if ((unsigned)d < RWKV_DTYPE_COUNT) {
            count[d]++;
            bytes[d] += (double)t->tensors[i].nbytes;
        }
    }
    printf("%-14s %s\n", "file", t->path);
    print_bytes("file size", (double)t->map.size);
    printf("%-14s %zu:", "tensors", t->n_tensors);
    for (int d = 0; d < RWKV_DTYPE_COUNT; d++)
        if (count[d])
            printf(" %s %zu (%.2f MiB)", rwkv_dtype_name((enum rwkv_dtype)d), count[d], bytes[d] / (1 << 20));
    printf("\n");
    for (size_t i = 0; i < t->n_meta; i++)
        printf("%-14s %s = %.200s\n", i ? "" : "metadata", t->meta[i].key, t->meta[i].value);
}

static void print_model(const struct rwkv_model_info *in)
{
    printf("%-14s %s\n", "version", rwkv_arch_name(in->arch));
    printf("%-14s %d\n", "layers", in->n_layer);
    printf("%-14s %d\n", "embd", in->n_embd);
    if (in->arch == RWKV_ARCH_V4)
        printf("%-14s none (v4 attention is per channel)\n", "heads");
    else
        printf("%-14s %d x %d\n", "heads", in->n_head, in->head_size);
    printf("%-14s %d\n", "ffn", in->n_ffn);
    printf("%-14s %d\n", "vocab", in->n_vocab);
    if (in->arch == RWKV_ARCH_V6)
        printf("%-14s time_mix %d, time_decay %d\n", "lora ranks", in->dim_mix, in->dim_decay);
    if (in->arch == RWKV_ARCH_V7)
        printf("%-14s w (decay) %d, a (in-context rate) %d, v (value residual) %d, g (gate) %d\n", "lora ranks",
               in->dim_mix, in->dim_decay, in->dim_value, in->dim_gate);
    int64_t table = (int64_t)in->n_vocab * in->n_embd;
    printf("%-14s %lld (%.1fM): blocks %lld, emb %lld, head %lld, other %lld\n", "params", (long long)in->n_params,
           (double)in->n_params / 1e6, (long long)in->n_params_layers, (long long)table, (long long)table,
           (long long)(in->n_params - in->n_params_layers - 2 * table));
    printf("%-14s matrices %s, per-channel vectors F32\n", "held as", rwkv_dtype_name(in->matrix_dtype));
    print_bytes("weight bytes", (double)in->weight_bytes);
    printf("%-14s %zu floats per slot (%.2f MiB)\n", "state", in->state_floats,
           (double)in->state_floats * 4 / (1 << 20));
}

int cmd_info(int argc, char **argv)
{
    const char *cmd = "info";
    struct cli_model_args ma;
    cli_model_args_init(&ma);
    ma.backend = RWKV_BACKEND_CPU; /* reading sizes needs no GPU upload */
    ma.threads = 1;
    int rc = 2;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        enum cli_first k = cli_first_option(&ma, cmd, usage_text, argc, argv, &i);
        if (k == CLI_HELP || k == CLI_BAD) {
            rc = k == CLI_HELP ? 0 : 2;
            goto done;
        }
        if (k == CLI_TAKEN)
            continue;
        if (a[0] != '-' && !ma.model) {
            ma.model = a;
        } else {
            cli_error(cmd, "unknown option '%s' (rwkv info --help)", a);
            goto done;
        }
    }
    if (!ma.model) {
        cli_error(cmd, "--model PATH is required (rwkv info --help)");
        goto done;
    }
    rc = 1;
    struct rwkv_error err;
    struct rwkv_tensor_table t;
    if (rwkv_table_open(ma.model, &t, &err)) {
        cli_error(cmd, "%s", err.message);
        goto done;
    }
    print_file(&t);
    rwkv_table_free(&t);
    struct cli_session ses;
    if (cli_session_open(&ses, &ma, 0, 1, cmd) == 0) {
        print_model(rwkv_model_get_info(ses.model));
        cli_session_close(&ses);
        rc = fflush(stdout) == 0 ? 0 : 1;
    }
done:
    cli_model_args_free(&ma);
    return rc;
}
