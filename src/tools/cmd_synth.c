/* rwkv synth: write a random-weight model of a real shape (see model/synth.h); and the synthetic-model
 * options that gen and bench share (tools/synth_cli.h). */
#include <stdio.h>
#include <string.h>

#include "core/platform.h"
#include "model/model.h"
#include "tools/cli.h"
#include "tools/synth_cli.h"

static const char usage_text[] =
    "usage: rwkv synth --out FILE.st [--size 0.1b|0.4b|1.5b|2.9b|7.2b]\n"
    "                  [--version 4|5|6|7 --layers L --embd D] [--vocab V] [--ffn F] [--head-size N]\n"
    "                  [--seed S] [--dtype f16|f32|bf16] [--threads N]\n"
    "  Writes a model with random weights (RWKV-LM's initialisation) in web-rwkv's .st layout.\n"
    "  --size      a released RWKV-7 shape: 0.1b = L12 D768, 0.4b = L24 D1024, 1.5b = L24 D2048,\n"
    "              2.9b = L32 D2560, 7.2b = L32 D4096 (vocabulary 65536); later options override it\n"
    "  --version   4, 5 (5.2, gated), 6 or 7 (default 7); --layers / --embd default to 12 / 768\n"
    "  --vocab     vocabulary size (default 65536)\n"
    "  --ffn       FFN size (default: v7 4 D, v4-v6 3.5 D rounded down to 32)\n"
    "  --head-size v5-v7 head size (default 64; D must be a multiple of it)\n"
    "  --seed      the same seed gives the same file (default 0)\n"
    "  --dtype     tensor precision (default f16, as web-rwkv writes)\n";

static int parse_dtype(const char *s, enum rwkv_dtype *out)
{
    static const struct {
        const char *name;
        enum rwkv_dtype dtype;
    } names[] = {{"f16", RWKV_DTYPE_F16}, {"F16", RWKV_DTYPE_F16}, {"f32", RWKV_DTYPE_F32},
                 {"F32", RWKV_DTYPE_F32}, {"bf16", RWKV_DTYPE_BF16}, {"BF16", RWKV_DTYPE_BF16}};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strcmp(s, names[i].name) == 0) {
            *out = names[i].dtype;
            return 1;
        }
    return 0;
}

/* An integer option into *dst; returns 2, or -1 after an error. */
static int int_option(const char *cmd, const char *opt, const char *value, long lo, long hi, int *dst)
{
    long v;
    if (!cli_parse_int(value, lo, hi, &v)) {
        cli_error(cmd, "%s '%s': expected an integer from %ld to %ld", opt, value, lo, hi);
        return -1;
    }
    *dst = (int)v;
    return 2;
}

int cli_synth_parse(struct rwkv_synth_options *o, int *given, const char *cmd, const char *opt, const char *value)
{
    static const char *const names[] = {"--size", "--synth-version", "--version", "--layers", "--embd",
                                        "--ffn", "--head-size", "--n-vocab", "--dtype", "--synth-seed"};
    size_t k = 0;
    while (k < sizeof names / sizeof names[0] && strcmp(opt, names[k]) != 0)
        k++;
    if (k == sizeof names / sizeof names[0])
        return 0;
    if (!value) {
        cli_error(cmd, "option %s needs a value", opt);
        return -1;
    }
    *given = 1;
    long seed;
    switch (k) {
    case 0:
        if (rwkv_synth_preset(value, o))
            return 2;
        cli_error(cmd, "--size '%s': expected one of %s", value, rwkv_synth_preset_names());
        return -1;
    case 1:
    case 2: return int_option(cmd, opt, value, 4, 7, &o->version);
    case 3: return int_option(cmd, opt, value, 1, 4096, &o->n_layer);
    case 4: return int_option(cmd, opt, value, 1, 65536, &o->n_embd);
    case 5: return int_option(cmd, opt, value, 1, 1 << 22, &o->n_ffn);
    case 6: return int_option(cmd, opt, value, 1, 1024, &o->head_size);
    case 7: return int_option(cmd, opt, value, 1, 1 << 24, &o->n_vocab);
    case 8:
        if (parse_dtype(value, &o->dtype))
            return 2;
        cli_error(cmd, "--dtype '%s': expected f16, f32 or bf16", value);
        return -1;
    default:
        if (!cli_parse_int(value, 0, 0x7fffffffL, &seed)) {
            cli_error(cmd, "%s '%s': expected an integer from 0 to 2147483647", opt, value);
            return -1;
        }
        o->seed = (uint64_t)seed;
        return 2;
    }
}

void cli_synth_name(const struct rwkv_synth_options *o, char *buf, size_t n)
{
    const char *preset = rwkv_synth_preset_of(o);
    if (preset)
        snprintf(buf, n, "synth v7 %s (L%d D%d)", preset, o->n_layer, o->n_embd);
    else
        snprintf(buf, n, "synth v%d L%d D%d V%d", o->version, o->n_layer, o->n_embd, o->n_vocab ? o->n_vocab : 65536);
}

static void print_summary(const char *path, const struct rwkv_synth_options *o, const struct rwkv_synth_shape *s,
                          double seconds)
{
    enum rwkv_arch arch = (enum rwkv_arch)(o->version == 5 ? RWKV_ARCH_V5_2 : o->version * 10);
    printf("wrote %s: RWKV v%s L%d D%d", path, rwkv_arch_name(arch), s->n_layer, s->n_embd);
    if (s->version >= 5)
        printf(" (%d x %d heads)", s->n_head, s->head_size);
    printf(" F%d V%d", s->n_ffn, s->n_vocab);
    if (s->version == 7)
        printf(", LoRA w/a/v/g %d/%d/%d/%d", s->rank_w, s->rank_a, s->rank_v, s->rank_g);
    if (s->version == 6)
        printf(", LoRA mix/decay %d/%d", s->rank_mix, s->rank_decay);
    printf(", %d tensors, %.1fM params, %.1f MB %s, seed %llu, %.1f s\n", s->n_tensors, (double)s->n_params / 1e6,
           (double)s->n_bytes / 1e6, rwkv_dtype_name(o->dtype), (unsigned long long)o->seed, seconds);
}

int cmd_synth(int argc, char **argv)
{
    const char *cmd = "synth", *out = NULL;
    struct rwkv_synth_options o = rwkv_synth_default_options();
    int given = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            fputs(usage_text, stdout);
            return 0;
        }
        /* this command's own spellings of the shared --n-vocab / --synth-seed */
        const char *alias = !strcmp(a, "--vocab") ? "--n-vocab" : !strcmp(a, "--seed") ? "--synth-seed" : a;
        int used = cli_synth_parse(&o, &given, cmd, alias, v);
        if (used == 0 && (!strcmp(a, "--threads") || !strcmp(a, "--out")) && !v) {
            cli_error(cmd, "option %s needs a value", a);
            return 2;
        }
        if (used == 0 && !strcmp(a, "--threads"))
            used = int_option(cmd, a, v, 1, 256, &o.n_threads);
        if (used == 0 && !strcmp(a, "--out")) {
            out = v;
            used = 2;
        }
        if (used == 0)
            cli_error(cmd, "unknown option '%s' (rwkv synth --help shows the options)", a);
        if (used <= 0)
            return 2;
        i += used - 1;
    }
    if (!out) {
        cli_error(cmd, "--out FILE is required (rwkv synth --help)");
        return 2;
    }
    struct rwkv_error err;
    struct rwkv_synth_shape shape;
    if (rwkv_synth_shape(&o, &shape, &err)) {
        cli_error(cmd, "%s", err.message);
        return 2;
    }
    double t0 = rwkv_time_seconds();
    if (rwkv_synth_write(&o, out, &err)) {
        cli_error(cmd, "%s", err.message);
        return 1;
    }
    print_summary(out, &o, &shape, rwkv_time_seconds() - t0);
    return 0;
}
