#include "tools/common.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/model.h"
#include "tools/cli.h"

void cli_model_args_init(struct cli_model_args *a)
{
    memset(a, 0, sizeof *a);
    a->backend = RWKV_BACKEND_AUTO;
    a->device_index = -1;
}

void cli_model_args_free(struct cli_model_args *a)
{
    for (int i = 0; i < a->n_loras; i++)
        free((char *)a->loras[i].path);
    free(a->loras);
    memset(a, 0, sizeof *a);
}

/* FILE[:ALPHA]; alpha defaults to 1. The spec's path is an owned copy (freed with the args). */
static int parse_lora(struct cli_model_args *a, const char *cmd, const char *v)
{
    struct rwkv_lora_spec spec = {NULL, 1.0f, NULL};
    const char *colon = strrchr(v, ':');
    size_t len = strlen(v);
    float alpha;
    if (colon && cli_parse_float(colon + 1, &alpha)) {
        spec.alpha = alpha;
        len = (size_t)(colon - v);
    }
    char *path = malloc(len + 1);
    if (!path) {
        cli_error(cmd, "out of memory");
        return -1;
    }
    memcpy(path, v, len);
    path[len] = '\0';
    spec.path = path;
    struct rwkv_lora_spec *n = realloc(a->loras, (size_t)(a->n_loras + 1) * sizeof *n);
    if (!n) {
        free(path);
        cli_error(cmd, "out of memory");
        return -1;
    }
    a->loras = n;
    a->loras[a->n_loras++] = spec;
    return 2;
}

enum cli_first cli_first_option(struct cli_model_args *a, const char *cmd, const char *usage, int argc, char **argv,
                                int *i)
{
    const char *opt = argv[*i];
    int used = cli_model_args_parse(a, cmd, opt, *i + 1 < argc ? argv[*i + 1] : NULL);
    if (used < 0)
        return CLI_BAD;
    if (used > 0) {
        *i += used - 1;
        return CLI_TAKEN;
    }
    if (!strcmp(opt, "--help") || !strcmp(opt, "-h")) {
        fputs(usage, stdout);
        return CLI_HELP;
    }
    return CLI_OWN;
}

int cli_model_args_parse(struct cli_model_args *a, const char *cmd, const char *opt, const char *value)
{
    static const char *const with_value[] = {"--model", "--backend", "--device", "--threads", "--lora"};
    int known = 0;
    for (size_t i = 0; i < sizeof with_value / sizeof *with_value; i++)
        known |= strcmp(opt, with_value[i]) == 0;
    if (!strcmp(opt, "--verbose") || !strcmp(opt, "-v")) {
        a->verbose = 1;
        return 1;
    }
    if (!known)
        return 0;
    if (!value) {
        cli_error(cmd, "option %s needs a value", opt);
        return -1;
    }
    long n;
    if (!strcmp(opt, "--model")) {
        a->model = value;
    } else if (!strcmp(opt, "--backend")) {
        if (!cli_parse_backend(value, &a->backend)) {
            cli_error(cmd, "--backend '%s': expected cpu, vulkan or auto", value);
            return -1;
        }
    } else if (!strcmp(opt, "--device")) {
        if (cli_parse_int(value, 0, 1 << 16, &n))
            a->device_index = (int)n;
        else
            a->device_name = value;
    } else if (!strcmp(opt, "--threads")) {
        if (!cli_parse_int(value, 1, 256, &n)) {
            cli_error(cmd, "--threads '%s': expected an integer from 1 to 256", value);
            return -1;
        }
        a->threads = (int)n;
    } else if (!strcmp(opt, "--lora")) {
        return parse_lora(a, cmd, value);
    }
    return 2;
}

int cli_session_open(struct cli_session *s, const struct cli_model_args *a, int num_batch, int chunk,
                     const char *cmd)
{
    return cli_session_open_synth(s, a, NULL, num_batch, chunk, cmd);
}

int cli_session_open_synth(struct cli_session *s, const struct cli_model_args *a,
                           const struct rwkv_synth_options *synth, int num_batch, int chunk, const char *cmd)
{
    struct rwkv_error err;
    memset(s, 0, sizeof *s);
    struct rwkv_device_options dopt = rwkv_device_default_options();
    dopt.backend = a->backend;
    dopt.n_threads = a->threads;
    dopt.device_index = a->device_index;
    dopt.device_name = a->device_name;
    dopt.verbose = a->verbose;
    if (rwkv_device_open(&dopt, &s->device, &err))
        goto fail;
    struct rwkv_model_options mopt = rwkv_model_default_options();
    mopt.loras = a->loras;
    mopt.n_loras = a->n_loras;
    if (synth) {
        struct rwkv_synth_options so = *synth;
        so.n_threads = a->threads;
        struct rwkv_tensor_table table;
        if (rwkv_synth_table(&so, &table, &err) ||
            rwkv_model_build(s->device, &table, &mopt, &s->model, &err)) /* owns the table from here */
            goto fail;
    } else if (rwkv_model_load(s->device, a->model, &mopt, &s->model, &err)) {
        goto fail;
    }
    if (num_batch > 0) {
        struct rwkv_state_options sopt = rwkv_state_default_options();
        sopt.num_batch = num_batch;
        sopt.token_chunk_size = chunk;
        if (rwkv_state_new(s->model, &sopt, &s->state, &err))
            goto fail;
    }
    return 0;
fail:
    cli_error(cmd, "%s", err.message);
    cli_session_close(s);
    return 1;
}

void cli_session_close(struct cli_session *s)
{
    rwkv_state_free(s->state);
    rwkv_model_free(s->model);
    rwkv_device_free(s->device);
    memset(s, 0, sizeof *s);
}
