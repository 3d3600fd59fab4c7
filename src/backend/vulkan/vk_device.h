/* Listing the Vulkan devices (for `rwkv devices`), without the Vulkan headers. */
#ifndef RWKV_BACKEND_VULKAN_VK_DEVICE_H
#define RWKV_BACKEND_VULKAN_VK_DEVICE_H

#include <stdint.h>

#include "rwkv.h"

struct rwkv_vk_device_info {
    int index;          /* the device_index that opens it */
    char name[256];
    char vendor[32];
    char type[16];      /* "discrete", "integrated", "virtual", "cpu", "other" */
    char api[16];       /* Vulkan version, "1.3.230" */
    uint64_t memory;    /* bytes of the largest device-local heap */
    int usable;         /* Vulkan >= 1.2 with a compute queue */
    char features[256]; /* "subgroup 32 (arithmetic), fp16, 16-bit storage, int dot, coopmat-nv" */
};

/* Every physical device, in enumeration order. *out is malloc'ed (free()); *n may be 0. Fails with
 * RWKV_ERR_UNSUPPORTED when there is no Vulkan driver at all. */
rwkv_status rwkv_vk_list_devices(struct rwkv_vk_device_info **out, int *n, struct rwkv_error *err);

#endif
