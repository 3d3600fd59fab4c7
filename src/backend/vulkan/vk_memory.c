/* Device memory: a few large blocks, each a VkBuffer bound to its own VkDeviceMemory, with tensors as
 * spans (offset, size) inside them. A block never exceeds the pool's cap (at most maxStorageBufferRange
 * and maxMemoryAllocationSize), so that any span can be bound as one storage-buffer descriptor; a
 * tensor bigger than that is split by its owner (weights by rows). Layouts are planned first and the
 * blocks created at their final size, so a small model makes one small allocation. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/vulkan/vk_internal.h"
#include "core/error.h"

static VkDeviceSize round_up(VkDeviceSize v, VkDeviceSize a)
{
    return (v + a - 1) / a * a;
}

void vk_pool_init(struct vk_pool *p, VkDeviceSize block_cap, VkDeviceSize align)
{
    memset(p, 0, sizeof *p);
    p->block_cap = block_cap;
    p->align = align;
}

rwkv_status vk_pool_reserve(struct vk_pool *p, VkDeviceSize size, struct vk_span *out, const char *what,
                            struct rwkv_error *err)
{
    size = round_up(size ? size : 4, 4);
    if (size > p->block_cap)
        return rwkv_fail(err, RWKV_ERR_UNSUPPORTED, "vulkan: %s needs %llu MiB in one buffer; this device binds "
                         "at most %llu MiB (maxStorageBufferRange)", what, (unsigned long long)(size >> 20),
                         (unsigned long long)(p->block_cap >> 20));
    struct vk_block *b = p->n_blocks ? &p->blocks[p->n_blocks - 1] : NULL;
    VkDeviceSize off = b ? round_up(b->size, p->align) : 0;
    if (!b || b->buffer || off + size > p->block_cap) {
        if (p->n_blocks == p->cap_blocks) {
            int nc = p->cap_blocks ? 2 * p->cap_blocks : 8;
            struct vk_block *nb = realloc(p->blocks, (size_t)nc * sizeof *nb);
            if (!nb)
                return rwkv_fail(err, RWKV_ERR_NOMEM, "out of memory");
            p->blocks = nb;
            p->cap_blocks = nc;
        }
        b = &p->blocks[p->n_blocks++];
        memset(b, 0, sizeof *b);
        off = 0;
    }
    out->block = (int)(b - p->blocks);
    out->offset = off;
    out->size = size;
    b->size = off + size;
    return RWKV_OK;
}

/* A memory type allowed by `bits` with all of `need`, preferring one that also has `prefer`. */
static int find_type(const VkPhysicalDeviceMemoryProperties *m, uint32_t bits, VkMemoryPropertyFlags need,
                     VkMemoryPropertyFlags prefer)
{
    for (int pass = 0; pass < 2; pass++) {
        VkMemoryPropertyFlags want = pass == 0 ? need | prefer : need;
        for (uint32_t i = 0; i < m->memoryTypeCount; i++)
            if ((bits & (1u << i)) && (m->memoryTypes[i].propertyFlags & want) == want)
                return (int)i;
    }
    return -1;
}

static void mem_flags(enum vk_mem mem, VkMemoryPropertyFlags *need, VkMemoryPropertyFlags *prefer)
{
    const VkMemoryPropertyFlags host = VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT | VK_MEMORY_PROPERTY_HOST_COHERENT_BIT;
    *need = mem == VK_MEM_DEVICE ? 0 : mem == VK_MEM_HOST ? host : host | VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT;
    *prefer = mem == VK_MEM_HOST ? VK_MEMORY_PROPERTY_HOST_CACHED_BIT : VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT;
}

int vk_has_mapped_device(struct vk_dev *d, VkBufferUsageFlags usage)
{
    VkBufferCreateInfo bi = {.sType = VK_STRUCTURE_TYPE_BUFFER_CREATE_INFO, .size = 256, .usage = usage,
                             .sharingMode = VK_SHARING_MODE_EXCLUSIVE};
    VkBuffer b;
    if (vkCreateBuffer(d->device, &bi, NULL, &b) != VK_SUCCESS)
        return 0;
    VkMemoryRequirements req;
    vkGetBufferMemoryRequirements(d->device, b, &req);
    vkDestroyBuffer(d->device, b, NULL);
    VkMemoryPropertyFlags need, prefer;
    mem_flags(VK_MEM_MAPPED_DEVICE, &need, &prefer);
    return find_type(&d->mem, req.memoryTypeBits, need, prefer) >= 0;
}

static rwkv_status block_create(struct vk_dev *d, struct vk_block *b, VkBufferUsageFlags usage, enum vk_mem mem,
                                struct rwkv_error *err)
{
    VkBufferCreateInfo bi = {.sType = VK_STRUCTURE_TYPE_BUFFER_CREATE_INFO, .size = b->size, .usage = usage,
                             .sharingMode = VK_SHARING_MODE_EXCLUSIVE};
    VkResult r = vkCreateBuffer(d->device, &bi, NULL, &b->buffer);
    if (r != VK_SUCCESS) {
        b->buffer = VK_NULL_HANDLE;
        return vk_fail(d, r, err, "vkCreateBuffer");
    }
    VkMemoryRequirements req;
    vkGetBufferMemoryRequirements(d->device, b->buffer, &req);
    VkMemoryPropertyFlags need, prefer;
    mem_flags(mem, &need, &prefer);
    int type = find_type(&d->mem, req.memoryTypeBits, need, prefer);
    const char *kind = mem == VK_MEM_DEVICE ? "device" : mem == VK_MEM_HOST ? "host-visible" : "mapped device";
    if (type < 0)
        return rwkv_fail(err, RWKV_ERR_DEVICE, "vulkan: no memory type for a %s buffer", kind);
    VkMemoryAllocateInfo ai = {.sType = VK_STRUCTURE_TYPE_MEMORY_ALLOCATE_INFO, .allocationSize = req.size,
                               .memoryTypeIndex = (uint32_t)type};
    r = vkAllocateMemory(d->device, &ai, NULL, &b->memory);
    if (r != VK_SUCCESS) {
        b->memory = VK_NULL_HANDLE;
        char what[96];
        snprintf(what, sizeof what, "allocating %llu MiB of %s memory", (unsigned long long)(req.size >> 20), kind);
        return vk_fail(d, r, err, what);
    }
    if ((r = vkBindBufferMemory(d->device, b->buffer, b->memory, 0)) != VK_SUCCESS)
        return vk_fail(d, r, err, "vkBindBufferMemory");
    if (mem != VK_MEM_DEVICE && (r = vkMapMemory(d->device, b->memory, 0, VK_WHOLE_SIZE, 0, &b->mapped)) != VK_SUCCESS)
        return vk_fail(d, r, err, "vkMapMemory");
    return RWKV_OK;
}

rwkv_status vk_pool_commit(struct vk_dev *d, struct vk_pool *p, VkBufferUsageFlags usage, enum vk_mem mem,
                           struct rwkv_error *err)
{
    for (int i = 0; i < p->n_blocks; i++) {
        if (p->blocks[i].buffer)
            continue;
        rwkv_status st = block_create(d, &p->blocks[i], usage, mem, err);
        if (st)
            return st;
    }
    return RWKV_OK;
}

void vk_pool_free(struct vk_dev *d, struct vk_pool *p)
{
    for (int i = 0; i < p->n_blocks; i++) {
        if (p->blocks[i].buffer)
            vkDestroyBuffer(d->device, p->blocks[i].buffer, NULL);
        if (p->blocks[i].memory)
            vkFreeMemory(d->device, p->blocks[i].memory, NULL);
    }
    free(p->blocks);
    memset(p, 0, sizeof *p);
}

rwkv_status vk_staging_new(struct vk_dev *d, struct vk_pool *p, VkDeviceSize size, struct rwkv_error *err)
{
    vk_pool_init(p, round_up(size ? size : 4, 4), d->lim.align);
    struct vk_span s;
    rwkv_status st = vk_pool_reserve(p, size, &s, "staging", err);
    if (!st)
        st = vk_pool_commit(d, p, VK_BUFFER_USAGE_TRANSFER_SRC_BIT | VK_BUFFER_USAGE_TRANSFER_DST_BIT, VK_MEM_HOST, err);
    return st;
}
