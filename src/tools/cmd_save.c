/* rwkv save: load a model (merging LoRAs) and write it in the engine's format. */
#include <stdio.h>
#include <string.h>

#include "tools/cli.h"
#include "tools/common.h"

int cmd_save(int argc, char **argv)
{
    const char *cmd = "save", *out = NULL;
    struct cli_model_args ma;
    cli_model_args_init(&ma);
    int rc = 2;
    struct cli_session ses = {0};
    for (int i = 1; i < argc; i++) {
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        enum cli_first k = cli_first_option(&ma, cmd, "usage: rwkv save --model PATH [--lora FILE[:ALPHA]]... --out FILE.st\n",
                                            argc, argv, &i);
        if (k == CLI_HELP || k == CLI_BAD) {
            rc = k == CLI_HELP ? 0 : 2;
            goto done;
        }
        if (k == CLI_TAKEN)
            continue;
        if (!strcmp(argv[i], "--out") && v) {
            out = v;
            i++;
        } else {
            cli_error(cmd, "unknown option or missing value '%s'", argv[i]);
            goto done;
        }
    }
    if (!ma.model || !out) {
        cli_error(cmd, "--model and --out are required");
        goto done;
    }
    ma.backend = RWKV_BACKEND_CPU;
    rc = 1;
    if (cli_session_open(&ses, &ma, 0, 0, cmd))
        goto done;
    struct rwkv_error err;
    if (rwkv_model_save(ses.model, out, &err)) {
        cli_error(cmd, "%s", err.message);
        goto done;
    }
    rc = 0;
done:
    cli_session_close(&ses);
    cli_model_args_free(&ma);
    return rc;
}
