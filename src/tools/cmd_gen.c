#include "tools/cli.h"

int cmd_gen(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    cli_error("gen", "not built yet");
    return 1;
}
