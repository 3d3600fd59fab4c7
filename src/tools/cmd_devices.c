/* rwkv devices: the compute devices this build can use — the CPU backend and every Vulkan device. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tools/cli.h"
#ifdef RWKV_HAVE_VULKAN
#include "backend/vulkan/vk_device.h"
#endif

static const char usage_text[] = "usage: rwkv devices\n"
                                 "  Lists the CPU backend and each Vulkan device with the index that\n"
                                 "  --device N (or env RWKV_DEVICE) selects.\n";

static int print_cpu(void)
{
    struct rwkv_device_options o = rwkv_device_default_options();
    o.backend = RWKV_BACKEND_CPU;
    struct rwkv_device *dev;
    struct rwkv_error err;
    if (rwkv_device_open(&o, &dev, &err)) {
        cli_error("devices", "%s", err.message);
        return 1;
    }
    printf("cpu     %s\n", rwkv_device_description(dev));
    rwkv_device_free(dev);
    return 0;
}

#ifdef RWKV_HAVE_VULKAN
static int print_vulkan(void)
{
    struct rwkv_vk_device_info *l;
    int n;
    struct rwkv_error err;
    if (rwkv_vk_list_devices(&l, &n, &err)) {
        printf("%s\n", err.message);
        return 0; /* no driver is a fact to report, not a failure of this command */
    }
    if (n == 0)
        printf("vulkan: no devices\n");
    for (int i = 0; i < n; i++)
        printf("vulkan  %d: %s | %s | %s | %.1f GiB | Vulkan %s | %s%s\n", l[i].index, l[i].name, l[i].vendor,
               l[i].type, (double)l[i].memory / (1024.0 * 1024.0 * 1024.0), l[i].api, l[i].features,
               l[i].usable ? "" : " | unusable (needs Vulkan 1.2 and a compute queue)");
    free(l);
    return 0;
}
#else
static int print_vulkan(void)
{
    printf("vulkan: not built\n");
    return 0;
}
#endif

int cmd_devices(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            fputs(usage_text, stdout);
            return 0;
        }
        cli_error("devices", "unknown option '%s' (rwkv devices --help)", argv[i]);
        return 2;
    }
    int rc = print_cpu();
    return print_vulkan() || rc;
}
