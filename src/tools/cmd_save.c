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
        int used = cli_model_args_parse(&ma, cmd, argv[i], v);
        if (used < 0)
            goto done;
        if (used > 0) {
            i += used - 1;
        } else if (!strcmp(argv[i], "--out") && v) {
            out = v;
            i++;
        } else if (!strcmp(argv[i], "--help")) {
            puts("usage: rwkv save --model PATH [--lora FILE[:ALPHA]]... --out FILE.st");
            rc = 0;
            goto done;
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
