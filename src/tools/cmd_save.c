#include "tools/cli.h"

int cmd_save(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    cli_error("save", "not built yet");
    return 1;
}
