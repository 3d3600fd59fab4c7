#include "tools/cli.h"

int cmd_convert(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    cli_error("convert", "not built yet");
    return 1;
}
