#include "tools/cli.h"

int cmd_devices(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    cli_error("devices", "not built yet");
    return 1;
}
