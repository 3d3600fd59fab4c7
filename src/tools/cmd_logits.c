/* rwkv logits: run token sequences as one batch and write float32 logits (an external contract). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/platform.h"
#include "tools/cli.h"
#include "tools/common.h"

static const char usage_text[] =
    "usage: rwkv logits --model PATH --tokens IDS [--tokens IDS ...] --out FILE\n"
    "                   [--backend cpu|vulkan|auto] [--device N] [--threads N] [--chunk N] [--all]\n"
    "                   [--state-in FILE] [--state-out FILE] [--init-state FILE] [--lora FILE[:ALPHA]]...\n"
    "  IDS: comma-separated token ids; each --tokens is one sequence (one state slot).\n"
    "  --out: float32 little-endian rows of n_vocab: per sequence, every token's row with --all,\n"
    "         else its last token's row.\n";

struct seq {
    int32_t *ids;
    size_t n;
};

int cmd_logits(int argc, char **argv)
{
    const char *cmd = "logits";
    struct cli_model_args ma;
    cli_model_args_init(&ma);
    struct seq *seqs = NULL;
    int n_seqs = 0, all = 0, rc = 2;
    long chunk = 256;
    const char *out_path = NULL, *state_in = NULL, *state_out = NULL, *init_state = NULL;
    struct cli_session ses = {0};
    float *logits = NULL;
    struct rwkv_slot_io *io = NULL;
    struct rwkv_error err;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        enum cli_first k = cli_first_option(&ma, cmd, usage_text, argc, argv, &i);
        if (k != CLI_OWN) {
            if (k == CLI_TAKEN)
                continue;
            rc = k == CLI_HELP ? 0 : 2;
            goto done;
        }
        if (!strcmp(a, "--all")) {
            all = 1;
            continue;
        }
        if (!v) {
            cli_error(cmd, "option %s needs a value (rwkv logits --help)", a);
            goto done;
        }
        i++;
        if (!strcmp(a, "--tokens")) {
            struct seq *ns = realloc(seqs, (size_t)(n_seqs + 1) * sizeof *ns);
            if (!ns) {
                cli_error(cmd, "out of memory");
                goto done;
            }
            seqs = ns;
            if (!cli_parse_ids(v, &seqs[n_seqs].ids, &seqs[n_seqs].n)) {
                cli_error(cmd, "--tokens '%.40s': expected comma-separated token ids", v);
                goto done;
            }
            n_seqs++;
        } else if (!strcmp(a, "--chunk")) {
            if (!cli_parse_int(v, 1, 1 << 20, &chunk)) {
                cli_error(cmd, "--chunk '%s': expected an integer from 1 to %d", v, 1 << 20);
                goto done;
            }
        } else if (!strcmp(a, "--out")) {
            out_path = v;
        } else if (!strcmp(a, "--state-in")) {
            state_in = v;
        } else if (!strcmp(a, "--state-out")) {
            state_out = v;
        } else if (!strcmp(a, "--init-state")) {
            init_state = v;
        } else {
            cli_error(cmd, "unknown option '%s' (rwkv logits --help)", a);
            goto done;
        }
    }
    if (!ma.model || !out_path || n_seqs == 0) {
        cli_error(cmd, "--model, --tokens and --out are required (rwkv logits --help)");
        goto done;
    }
    if ((state_in || state_out || init_state) && n_seqs != 1) {
        cli_error(cmd, "--state-in, --state-out and --init-state need exactly one --tokens sequence");
        goto done;
    }
    if (state_in && init_state) {
        cli_error(cmd, "--state-in and --init-state both set the initial state: give one");
        goto done;
    }
    for (int s = 0; s < n_seqs; s++)
        if (seqs[s].n == 0 && !all) {
            cli_error(cmd, "sequence %d is empty: it has no last token to give logits for", s + 1);
            goto done;
        }
    rc = 1;
    if (cli_session_open(&ses, &ma, n_seqs, (int)chunk, cmd))
        goto done;
    if (state_in && rwkv_state_load(ses.state, 0, state_in, &err)) {
        cli_error(cmd, "%s", err.message);
        goto done;
    }
    if (init_state && rwkv_state_load_time_state(ses.state, 0, init_state, &err)) {
        cli_error(cmd, "%s", err.message);
        goto done;
    }
    size_t V = (size_t)rwkv_model_get_info(ses.model)->n_vocab, rows = 0;
    for (int s = 0; s < n_seqs; s++)
        rows += all ? seqs[s].n : 1;
    logits = malloc(rows * V * sizeof *logits + 1);
    io = calloc((unsigned)n_seqs, sizeof *io);
    if (!logits || !io) {
        cli_error(cmd, "out of memory for %zu logits rows", rows);
        goto done;
    }
    size_t row = 0;
    for (int s = 0; s < n_seqs; s++) {
        io[s].tokens = seqs[s].ids;
        io[s].n_tokens = seqs[s].n;
        io[s].output = all ? RWKV_OUTPUT_ALL : RWKV_OUTPUT_LAST;
        io[s].logits = logits + row * V;
        io[s].logits_rows = all ? seqs[s].n : 1;
        row += io[s].logits_rows;
    }
    for (;;) {
        int pending = 0;
        for (int s = 0; s < n_seqs; s++)
            pending |= io[s].n_tokens > 0;
        if (!pending)
            break;
        if (rwkv_run(ses.state, io, n_seqs, &err)) {
            cli_error(cmd, "%s", err.message);
            goto done;
        }
    }
    if (state_out && rwkv_state_save(ses.state, 0, state_out, &err)) {
        cli_error(cmd, "%s", err.message);
        goto done;
    }
    const void *parts[1] = {logits};
    size_t sizes[1] = {rows * V * sizeof(float)};
    if (rwkv_write_file_atomic(out_path, parts, sizes, 1, &err)) {
        cli_error(cmd, "%s", err.message);
        goto done;
    }
    rc = 0;
done:
    free(io);
    free(logits);
    cli_session_close(&ses);
    for (int s = 0; s < n_seqs; s++)
        free(seqs[s].ids);
    free(seqs);
    cli_model_args_free(&ma);
    return rc;
}
