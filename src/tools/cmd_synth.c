#include "tools/cli.h"

int cmd_synth(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    cli_error("synth", "not built yet");
    return 1;
}
