/* Options every model-running subcommand shares (--model, --backend, --device, --threads, --lora),
 * and opening device + model + state from them. */
#ifndef RWKV_TOOLS_COMMON_H
#define RWKV_TOOLS_COMMON_H

#include "model/synth.h"
#include "rwkv.h"

struct cli_model_args {
    const char *model;
    enum rwkv_backend backend;
    int device_index;
    const char *device_name;
    int threads;
    int verbose;
    struct rwkv_lora_spec *loras;
    int n_loras;
};

void cli_model_args_init(struct cli_model_args *a);
void cli_model_args_free(struct cli_model_args *a);
/* Tries to consume option `opt` (with `value`, which may be NULL). Returns the number of argv entries
 * used (1 or 2), 0 if the option is not one of these, or -1 after printing an error. */
int cli_model_args_parse(struct cli_model_args *a, const char *cmd, const char *opt, const char *value);

/* What a subcommand with the model options makes of argv[*i] first: one of those (CLI_TAKEN, *i moved past
 * its value), --help / -h (CLI_HELP, after printing `usage`), an error already printed (CLI_BAD), or an
 * option of the subcommand's own (CLI_OWN). */
enum cli_first { CLI_OWN, CLI_TAKEN, CLI_HELP, CLI_BAD };
enum cli_first cli_first_option(struct cli_model_args *a, const char *cmd, const char *usage, int argc, char **argv,
                                int *i);

struct cli_session {
    struct rwkv_device *device;
    struct rwkv_model *model;
    struct rwkv_state *state;
};

/* Opens the device, loads the model and creates a state; prints a one-line error and returns 1 on
 * failure (with everything opened so far closed). num_batch 0 = no state. */
int cli_session_open(struct cli_session *s, const struct cli_model_args *a, int num_batch, int chunk,
                     const char *cmd);
/* The same for a synthetic model built in memory from `synth` (NULL: load a->model). */
int cli_session_open_synth(struct cli_session *s, const struct cli_model_args *a,
                           const struct rwkv_synth_options *synth, int num_batch, int chunk, const char *cmd);
void cli_session_close(struct cli_session *s);

#endif
