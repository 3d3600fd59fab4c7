#include "tools/cli.h"

int cmd_info(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    cli_error("info", "not built yet");
    return 1;
}
