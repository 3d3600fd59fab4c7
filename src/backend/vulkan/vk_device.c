/* Vulkan instance, physical device choice, feature probes, the logical device and its queue.
 *
 * Choice: options.device_index >= 0 picks that device; else env RWKV_DEVICE (an index, or a name
 * substring); else options.device_name (substring); else the best device: discrete > integrated >
 * virtual > cpu, then the most device-local memory. With backend AUTO and no explicit choice, CPU-type
 * Vulkan devices (lavapipe, SwiftShader) are skipped: the CPU backend is faster than them.
 *
 * Environment knobs (read here, once per device): RWKV_VK_NO_SUBGROUP=1 makes reductions use shared
 * memory only (the path for devices without subgroup arithmetic); RWKV_VK_SPLIT_BYTES=N splits weights
 * and per-output tiles at N bytes instead of maxStorageBufferRange (tests use it to exercise splitting
 * on small models); RWKV_VK_COOPMAT=0|1|fp16|fallback picks how prefill matmuls use tensor cores (enum
 * vk_coopmat; default 1 where VK_NV_cooperative_matrix offers 16x16x16 F16 products with F32 sums);
 * RWKV_VK_PROFILE=1|2 times every dispatch (or whole runs) and prints a summary when a state is freed;
 * RWKV_VK_CM_TILE=tiny|small|big forces one tensor-core tile and RWKV_VK_CM_TINY/_SMALL/_BIG=TM,TN,WM,WN,TK
 * redefines one (tuning); RWKV_VK_TABLE_COPY=1 copies chunk tables to the device even where the host
 * could write them there (tests); RWKV_VK_SPIN_US=N polls a submission's fence for up to N microseconds
 * before a blocking wait (default VK_SPIN_US; 0: block at once); RWKV_VK_SERIAL=1 puts a barrier before
 * every dispatch (to measure what overlapping them gains); RWKV_VK_ONE_TOKEN, RWKV_VK_KSPLIT,
 * RWKV_VK_WKV7_ROWS, RWKV_VK_SPARSE_FFN, RWKV_VK_PERSISTENT, RWKV_VK_MIX_FUSE, RWKV_VK_PIPELINE_STATS and
 * the GEMV ones: see vk_internal.h's struct vk_dev. */
#define _POSIX_C_SOURCE 200809L
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/vulkan/vk_device.h"
#include "backend/vulkan/vk_internal.h"
#include "core/error.h"
#include "core/platform.h"

/* ---- results ---- */

const char *vk_result_name(VkResult r)
{
    switch (r) {
    case VK_SUCCESS: return "VK_SUCCESS";
    case VK_NOT_READY: return "VK_NOT_READY";
    case VK_TIMEOUT: return "VK_TIMEOUT";
    case VK_INCOMPLETE: return "VK_INCOMPLETE";
    case VK_ERROR_OUT_OF_HOST_MEMORY: return "VK_ERROR_OUT_OF_HOST_MEMORY";
    case VK_ERROR_OUT_OF_DEVICE_MEMORY: return "VK_ERROR_OUT_OF_DEVICE_MEMORY";
    case VK_ERROR_INITIALIZATION_FAILED: return "VK_ERROR_INITIALIZATION_FAILED";
    case VK_ERROR_DEVICE_LOST: return "VK_ERROR_DEVICE_LOST";
    case VK_ERROR_MEMORY_MAP_FAILED: return "VK_ERROR_MEMORY_MAP_FAILED";
    case VK_ERROR_LAYER_NOT_PRESENT: return "VK_ERROR_LAYER_NOT_PRESENT";
    case VK_ERROR_EXTENSION_NOT_PRESENT: return "VK_ERROR_EXTENSION_NOT_PRESENT";
    case VK_ERROR_FEATURE_NOT_PRESENT: return "VK_ERROR_FEATURE_NOT_PRESENT";
    case VK_ERROR_INCOMPATIBLE_DRIVER: return "VK_ERROR_INCOMPATIBLE_DRIVER";
    case VK_ERROR_TOO_MANY_OBJECTS: return "VK_ERROR_TOO_MANY_OBJECTS";
    case VK_ERROR_FORMAT_NOT_SUPPORTED: return "VK_ERROR_FORMAT_NOT_SUPPORTED";
    case VK_ERROR_FRAGMENTED_POOL: return "VK_ERROR_FRAGMENTED_POOL";
    case VK_ERROR_OUT_OF_POOL_MEMORY: return "VK_ERROR_OUT_OF_POOL_MEMORY";
    default: return "VK_ERROR_UNKNOWN";
    }
}

rwkv_status vk_fail(struct vk_dev *d, VkResult r, struct rwkv_error *err, const char *what)
{
    rwkv_status code = RWKV_ERR_DEVICE;
    if (r == VK_ERROR_OUT_OF_HOST_MEMORY || r == VK_ERROR_OUT_OF_DEVICE_MEMORY || r == VK_ERROR_OUT_OF_POOL_MEMORY ||
        r == VK_ERROR_FRAGMENTED_POOL || r == VK_ERROR_TOO_MANY_OBJECTS)
        code = RWKV_ERR_NOMEM;
    if (r == VK_ERROR_DEVICE_LOST && d)
        d->lost = 1;
    return rwkv_fail(err, code, "vulkan: %s: %s (%d)", what, vk_result_name(r), (int)r);
}

/* ---- physical devices ---- */

struct vk_phys_info {
    VkPhysicalDevice phys;
    VkPhysicalDeviceProperties props;
    VkDeviceSize local_mem;
    VkDeviceSize max_alloc;
    struct vk_features feat;
    int usable;
    uint32_t queue_family;
};

static int has_ext(const VkExtensionProperties *e, uint32_t n, const char *name)
{
    for (uint32_t i = 0; i < n; i++)
        if (strcmp(e[i].extensionName, name) == 0)
            return 1;
    return 0;
}

/* Device extensions; NULL (and *n = 0) when they cannot be listed. Caller frees. */
static VkExtensionProperties *device_exts(VkPhysicalDevice p, uint32_t *n)
{
    *n = 0;
    if (vkEnumerateDeviceExtensionProperties(p, NULL, n, NULL) != VK_SUCCESS || *n == 0)
        return NULL;
    VkExtensionProperties *e = malloc(*n * sizeof *e);
    if (e && vkEnumerateDeviceExtensionProperties(p, NULL, n, e) != VK_SUCCESS) {
        free(e);
        e = NULL;
    }
    if (!e)
        *n = 0;
    return e;
}

static int compute_family(VkPhysicalDevice p, uint32_t *family, uint32_t *ts_bits)
{
    uint32_t n = 0;
    vkGetPhysicalDeviceQueueFamilyProperties(p, &n, NULL);
    VkQueueFamilyProperties q[64];
    if (n > 64)
        n = 64;
    vkGetPhysicalDeviceQueueFamilyProperties(p, &n, q);
    for (uint32_t i = 0; i < n; i++)
        if ((q[i].queueFlags & VK_QUEUE_COMPUTE_BIT) && q[i].queueCount > 0) {
            *family = i;
            *ts_bits = q[i].timestampValidBits;
            return 1;
        }
    return 0;
}

/* Whether VK_NV_cooperative_matrix offers what gemm_cm.comp uses: 16x16x16, F16 A and B, F32 C and D,
 * on subgroups (of 32: the shader's workgroups are whole warps). */
static int coopmat_f16_ok(VkInstance inst, VkPhysicalDevice p, uint32_t subgroup_size)
{
    VkPhysicalDeviceCooperativeMatrixFeaturesNV cf = {
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_COOPERATIVE_MATRIX_FEATURES_NV};
    VkPhysicalDeviceFeatures2 f2 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_FEATURES_2, .pNext = &cf};
    vkGetPhysicalDeviceFeatures2(p, &f2);
    PFN_vkGetPhysicalDeviceCooperativeMatrixPropertiesNV get =
        (PFN_vkGetPhysicalDeviceCooperativeMatrixPropertiesNV)vkGetInstanceProcAddr(
            inst, "vkGetPhysicalDeviceCooperativeMatrixPropertiesNV");
    uint32_t n = 0;
    if (!cf.cooperativeMatrix || subgroup_size != 32 || !get || get(p, &n, NULL) != VK_SUCCESS || n == 0)
        return 0;
    VkCooperativeMatrixPropertiesNV *cp = calloc(n, sizeof *cp);
    int ok = 0;
    for (uint32_t i = 0; cp && i < n; i++)
        cp[i].sType = VK_STRUCTURE_TYPE_COOPERATIVE_MATRIX_PROPERTIES_NV;
    if (cp && get(p, &n, cp) >= 0)
        for (uint32_t i = 0; i < n; i++)
            ok |= cp[i].MSize == 16 && cp[i].NSize == 16 && cp[i].KSize == 16 &&
                  cp[i].AType == VK_COMPONENT_TYPE_FLOAT16_NV && cp[i].BType == VK_COMPONENT_TYPE_FLOAT16_NV &&
                  cp[i].CType == VK_COMPONENT_TYPE_FLOAT32_NV && cp[i].DType == VK_COMPONENT_TYPE_FLOAT32_NV &&
                  cp[i].scope == VK_SCOPE_SUBGROUP_NV;
    free(cp);
    return ok;
}

static void probe(VkInstance inst, VkPhysicalDevice p, struct vk_phys_info *out)
{
    memset(out, 0, sizeof *out);
    out->phys = p;
    vkGetPhysicalDeviceProperties(p, &out->props);
    VkPhysicalDeviceMemoryProperties mem;
    vkGetPhysicalDeviceMemoryProperties(p, &mem);
    for (uint32_t i = 0; i < mem.memoryHeapCount; i++)
        if ((mem.memoryHeaps[i].flags & VK_MEMORY_HEAP_DEVICE_LOCAL_BIT) && mem.memoryHeaps[i].size > out->local_mem)
            out->local_mem = mem.memoryHeaps[i].size;
    if (out->props.apiVersion < VK_API_VERSION_1_2 || !compute_family(p, &out->queue_family, &out->feat.ts_bits))
        return; /* the shaders are SPIR-V 1.5 (Vulkan 1.2) */
    out->usable = 1;

    VkPhysicalDeviceSubgroupProperties sg = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SUBGROUP_PROPERTIES};
    VkPhysicalDeviceMaintenance3Properties m3 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_MAINTENANCE_3_PROPERTIES,
                                                 .pNext = &sg};
    VkPhysicalDeviceProperties2 p2 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PROPERTIES_2, .pNext = &m3};
    vkGetPhysicalDeviceProperties2(p, &p2);
    VkPhysicalDeviceVulkan11Features f11 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_1_FEATURES};
    VkPhysicalDeviceVulkan12Features f12 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_2_FEATURES,
                                            .pNext = &f11};
    VkPhysicalDeviceFeatures2 f2 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_FEATURES_2, .pNext = &f12};
    vkGetPhysicalDeviceFeatures2(p, &f2);

    struct vk_features *f = &out->feat;
    out->max_alloc = m3.maxMemoryAllocationSize;
    f->subgroup_size = sg.subgroupSize;
    VkSubgroupFeatureFlags need = VK_SUBGROUP_FEATURE_BASIC_BIT | VK_SUBGROUP_FEATURE_ARITHMETIC_BIT;
    f->subgroup_arith = (sg.supportedStages & VK_SHADER_STAGE_COMPUTE_BIT) && (sg.supportedOperations & need) == need;
    f->subgroup_shuffle = f->subgroup_arith && (sg.supportedOperations & VK_SUBGROUP_FEATURE_SHUFFLE_BIT);
    f->fp16 = f12.shaderFloat16;
    f->storage16 = f11.storageBuffer16BitAccess;
    uint32_t n_ext;
    VkExtensionProperties *e = device_exts(p, &n_ext);
    f->int_dot = out->props.apiVersion >= VK_API_VERSION_1_3 || has_ext(e, n_ext, "VK_KHR_shader_integer_dot_product");
    f->coopmat_nv = has_ext(e, n_ext, "VK_NV_cooperative_matrix");
    f->coopmat_khr = has_ext(e, n_ext, "VK_KHR_cooperative_matrix");
    f->coopmat_f16 = f->coopmat_nv && f->fp16 && coopmat_f16_ok(inst, p, f->subgroup_size);
    f->dyn_index = f2.features.shaderStorageBufferArrayDynamicIndexing;
    if (has_ext(e, n_ext, VK_NV_SHADER_SM_BUILTINS_EXTENSION_NAME)) {
        VkPhysicalDeviceShaderSMBuiltinsPropertiesNV sm = {
            .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SHADER_SM_BUILTINS_PROPERTIES_NV};
        VkPhysicalDeviceProperties2 smp = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PROPERTIES_2, .pNext = &sm};
        vkGetPhysicalDeviceProperties2(p, &smp);
        f->sm_count = sm.shaderSMCount;
    }
    free(e);
}

static const char *vendor_name(uint32_t id)
{
    switch (id) {
    case 0x10DE: return "NVIDIA";
    case 0x1002: return "AMD";
    case 0x8086: return "Intel";
    case 0x13B5: return "ARM";
    case 0x5143: return "Qualcomm";
    case 0x106B: return "Apple";
    case 0x1010: return "ImgTec";
    case 0x10005: return "Mesa";
    default: return "unknown";
    }
}

static const char *type_name(VkPhysicalDeviceType t)
{
    switch (t) {
    case VK_PHYSICAL_DEVICE_TYPE_DISCRETE_GPU: return "discrete";
    case VK_PHYSICAL_DEVICE_TYPE_INTEGRATED_GPU: return "integrated";
    case VK_PHYSICAL_DEVICE_TYPE_VIRTUAL_GPU: return "virtual";
    case VK_PHYSICAL_DEVICE_TYPE_CPU: return "cpu";
    default: return "other";
    }
}

static int type_rank(VkPhysicalDeviceType t)
{
    switch (t) {
    case VK_PHYSICAL_DEVICE_TYPE_DISCRETE_GPU: return 4;
    case VK_PHYSICAL_DEVICE_TYPE_INTEGRATED_GPU: return 3;
    case VK_PHYSICAL_DEVICE_TYPE_VIRTUAL_GPU: return 2;
    case VK_PHYSICAL_DEVICE_TYPE_CPU: return 1;
    default: return 0;
    }
}

static void features_string(const struct vk_features *f, char *buf, size_t n)
{
    snprintf(buf, n, "subgroup %u%s%s%s%s%s%s", f->subgroup_size, f->subgroup_arith ? " (arithmetic)" : "",
             f->fp16 ? ", fp16" : "", f->storage16 ? ", 16-bit storage" : "", f->int_dot ? ", int dot" : "",
             f->coopmat_nv ? (f->coopmat_f16 ? ", coopmat-nv (f16 16x16x16)" : ", coopmat-nv") : "",
             f->coopmat_khr ? ", coopmat-khr" : "");
}

static void api_string(uint32_t v, char *buf, size_t n)
{
    snprintf(buf, n, "%u.%u.%u", VK_API_VERSION_MAJOR(v), VK_API_VERSION_MINOR(v), VK_API_VERSION_PATCH(v));
}

/* ---- instance ---- */

static rwkv_status instance_new(VkInstance *out, struct rwkv_error *err)
{
    uint32_t n = 0;
    VkExtensionProperties exts[256];
    if (vkEnumerateInstanceExtensionProperties(NULL, &n, NULL) == VK_SUCCESS) {
        if (n > 256)
            n = 256;
        if (vkEnumerateInstanceExtensionProperties(NULL, &n, exts) < 0)
            n = 0;
    }
    /* MoltenVK and other non-conformant drivers are listed only with portability enumeration */
    int portability = has_ext(exts, n, VK_KHR_PORTABILITY_ENUMERATION_EXTENSION_NAME);
    const char *names[1] = {VK_KHR_PORTABILITY_ENUMERATION_EXTENSION_NAME};
    VkApplicationInfo app = {.sType = VK_STRUCTURE_TYPE_APPLICATION_INFO, .pApplicationName = "rwkv-c",
                             .pEngineName = "rwkv-c", .apiVersion = VK_API_VERSION_1_2};
    VkInstanceCreateInfo ci = {.sType = VK_STRUCTURE_TYPE_INSTANCE_CREATE_INFO, .pApplicationInfo = &app,
                               .enabledExtensionCount = portability ? 1 : 0, .ppEnabledExtensionNames = names,
                               .flags = portability ? VK_INSTANCE_CREATE_ENUMERATE_PORTABILITY_BIT_KHR : 0};
    VkResult r = vkCreateInstance(&ci, NULL, out);
    if (r != VK_SUCCESS)
        return rwkv_fail(err, RWKV_ERR_UNSUPPORTED, "vulkan: no usable Vulkan driver (vkCreateInstance: %s)",
                         vk_result_name(r));
    return RWKV_OK;
}

/* Probes every physical device; *infos is malloc'ed. */
static rwkv_status enumerate(VkInstance inst, struct vk_phys_info **infos, uint32_t *n, struct rwkv_error *err)
{
    *infos = NULL;
    *n = 0;
    uint32_t count = 0;
    VkResult r = vkEnumeratePhysicalDevices(inst, &count, NULL);
    if (r != VK_SUCCESS)
        return vk_fail(NULL, r, err, "vkEnumeratePhysicalDevices");
    if (count == 0)
        return RWKV_OK;
    VkPhysicalDevice *phys = malloc(count * sizeof *phys);
    struct vk_phys_info *in = calloc(count, sizeof *in);
    if (!phys || !in) {
        free(phys);
        free(in);
        return rwkv_fail(err, RWKV_ERR_NOMEM, "out of memory");
    }
    r = vkEnumeratePhysicalDevices(inst, &count, phys);
    if (r < 0) {
        free(phys);
        free(in);
        return vk_fail(NULL, r, err, "vkEnumeratePhysicalDevices");
    }
    for (uint32_t i = 0; i < count; i++)
        probe(inst, phys[i], &in[i]);
    free(phys);
    *infos = in;
    *n = count;
    return RWKV_OK;
}

rwkv_status rwkv_vk_list_devices(struct rwkv_vk_device_info **out, int *n, struct rwkv_error *err)
{
    *out = NULL;
    *n = 0;
    VkInstance inst;
    rwkv_status st = instance_new(&inst, err);
    if (st)
        return st;
    struct vk_phys_info *in;
    uint32_t count;
    st = enumerate(inst, &in, &count, err);
    if (!st && count > 0) {
        struct rwkv_vk_device_info *l = calloc(count, sizeof *l);
        if (!l) {
            st = rwkv_fail(err, RWKV_ERR_NOMEM, "out of memory");
        } else {
            for (uint32_t i = 0; i < count; i++) {
                l[i].index = (int)i;
                snprintf(l[i].name, sizeof l[i].name, "%s", in[i].props.deviceName);
                snprintf(l[i].vendor, sizeof l[i].vendor, "%s", vendor_name(in[i].props.vendorID));
                snprintf(l[i].type, sizeof l[i].type, "%s", type_name(in[i].props.deviceType));
                api_string(in[i].props.apiVersion, l[i].api, sizeof l[i].api);
                l[i].memory = in[i].local_mem;
                l[i].usable = in[i].usable;
                features_string(&in[i].feat, l[i].features, sizeof l[i].features);
            }
            *out = l;
            *n = (int)count;
        }
    }
    free(in);
    vkDestroyInstance(inst, NULL);
    return st;
}

/* ---- choice ---- */

static int contains_nocase(const char *hay, const char *needle)
{
    size_t n = strlen(needle);
    for (; *hay; hay++) {
        size_t i = 0;
        while (i < n && hay[i] && tolower((unsigned char)hay[i]) == tolower((unsigned char)needle[i]))
            i++;
        if (i == n)
            return 1;
    }
    return n == 0;
}

static rwkv_status pick_index(const struct vk_phys_info *in, uint32_t n, long index, const char *why, int *out,
                              struct rwkv_error *err)
{
    if (index < 0 || (uint32_t)index >= n)
        return rwkv_fail(err, RWKV_ERR_ARG, "vulkan: %s %ld: there %s %u Vulkan device%s (rwkv devices "
                         "lists them)", why, index, n == 1 ? "is" : "are", n, n == 1 ? "" : "s");
    if (!in[index].usable)
        return rwkv_fail(err, RWKV_ERR_UNSUPPORTED, "vulkan: device %ld (%s) lacks Vulkan 1.2 or a compute queue",
                         index, in[index].props.deviceName);
    *out = (int)index;
    return RWKV_OK;
}

static rwkv_status choose(const struct vk_phys_info *in, uint32_t n, const struct rwkv_device_options *o, int *out,
                          struct rwkv_error *err)
{
    if (o->device_index >= 0)
        return pick_index(in, n, o->device_index, "device index", out, err);
    const char *env = getenv("RWKV_DEVICE");
    const char *name = o->device_name;
    if (env && *env) {
        char *end;
        long v = strtol(env, &end, 10);
        if (*end == '\0')
            return pick_index(in, n, v, "RWKV_DEVICE", out, err);
        if (!name)
            name = env;
    }
    int explicit_choice = name != NULL;
    int best = -1;
    for (uint32_t i = 0; i < n; i++) {
        if (!in[i].usable || (name && !contains_nocase(in[i].props.deviceName, name)))
            continue;
        if (!explicit_choice && o->backend == RWKV_BACKEND_AUTO && in[i].props.deviceType == VK_PHYSICAL_DEVICE_TYPE_CPU)
            continue;
        if (best < 0 || type_rank(in[i].props.deviceType) > type_rank(in[best].props.deviceType) ||
            (type_rank(in[i].props.deviceType) == type_rank(in[best].props.deviceType) &&
             in[i].local_mem > in[best].local_mem))
            best = (int)i;
    }
    if (best < 0) {
        if (name)
            return rwkv_fail(err, RWKV_ERR_ARG, "vulkan: no usable device named like '%s' among %u", name, n);
        return rwkv_fail(err, RWKV_ERR_UNSUPPORTED, "vulkan: no usable %sdevice among %u",
                         o->backend == RWKV_BACKEND_AUTO ? "GPU " : "", n);
    }
    *out = best;
    return RWKV_OK;
}

/* ---- limits ---- */

static int env_flag(const char *name)
{
    const char *v = getenv(name);
    return v && *v && strcmp(v, "0") != 0;
}

static int coopmat_mode(const struct vk_features *f)
{
    const char *v = getenv("RWKV_VK_COOPMAT");
    if (!f->coopmat_f16 || (v && strcmp(v, "0") == 0))
        return VK_COOPMAT_OFF;
    if (v && strcmp(v, "fallback") == 0)
        return VK_COOPMAT_FALLBACK;
    return v && strcmp(v, "fp16") == 0 ? VK_COOPMAT_FP16 : VK_COOPMAT_SPLIT;
}

static void set_limits(struct vk_dev *d, VkDeviceSize max_alloc)
{
    const VkPhysicalDeviceLimits *l = &d->props.limits;
    struct vk_limits *lim = &d->lim;
    lim->max_range = l->maxStorageBufferRange & ~(VkDeviceSize)255;
    lim->max_alloc = max_alloc ? max_alloc : ((VkDeviceSize)1 << 30);
    if (lim->max_range > lim->max_alloc)
        lim->max_range = lim->max_alloc & ~(VkDeviceSize)255;
    /* weights live in blocks of at most 1 GiB: large enough to be few, small enough to place */
    lim->split_bytes = lim->max_range < ((VkDeviceSize)1 << 30) ? lim->max_range : ((VkDeviceSize)1 << 30);
    const char *split = getenv("RWKV_VK_SPLIT_BYTES");
    if (split && *split) {
        unsigned long long v = strtoull(split, NULL, 10);
        if (v >= 256 && v < lim->split_bytes)
            lim->split_bytes = (VkDeviceSize)v & ~(VkDeviceSize)15;
    }
    lim->align = l->minStorageBufferOffsetAlignment > 16 ? l->minStorageBufferOffsetAlignment : 16;
    for (int i = 0; i < 3; i++)
        lim->max_groups[i] = l->maxComputeWorkGroupCount[i];
    lim->max_wg = l->maxComputeWorkGroupSize[0] < l->maxComputeWorkGroupInvocations
                      ? l->maxComputeWorkGroupSize[0] : l->maxComputeWorkGroupInvocations;
    lim->max_bindings = l->maxPerStageDescriptorStorageBuffers;
    lim->max_shared = l->maxComputeSharedMemorySize;
}

/* ---- logical device ---- */

static rwkv_status logical_device(struct vk_dev *d, struct rwkv_error *err)
{
    float prio = 1.0f;
    VkDeviceQueueCreateInfo q = {.sType = VK_STRUCTURE_TYPE_DEVICE_QUEUE_CREATE_INFO,
                                 .queueFamilyIndex = d->queue_family, .queueCount = 1, .pQueuePriorities = &prio};
    uint32_t n_ext;
    VkExtensionProperties *e = device_exts(d->phys, &n_ext);
    const char *names[4];
    uint32_t n_names = 0;
    /* drivers that are not fully conformant (MoltenVK) require this extension to be enabled */
    if (has_ext(e, n_ext, "VK_KHR_portability_subset"))
        names[n_names++] = "VK_KHR_portability_subset";
    /* env RWKV_VK_PIPELINE_STATS=1: the driver's statistics of each pipeline (registers, spills) */
    d->pipe_stats = env_flag("RWKV_VK_PIPELINE_STATS") &&
                    has_ext(e, n_ext, VK_KHR_PIPELINE_EXECUTABLE_PROPERTIES_EXTENSION_NAME);
    if (d->pipe_stats)
        names[n_names++] = VK_KHR_PIPELINE_EXECUTABLE_PROPERTIES_EXTENSION_NAME;
    /* RWKV_VK_PROFILE: token7.comp reads the device clock at each phase */
    VkPhysicalDeviceShaderClockFeaturesKHR clk = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SHADER_CLOCK_FEATURES_KHR};
    if (d->profile && d->token_groups > 0 && has_ext(e, n_ext, VK_KHR_SHADER_CLOCK_EXTENSION_NAME)) {
        VkPhysicalDeviceFeatures2 q2 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_FEATURES_2, .pNext = &clk};
        vkGetPhysicalDeviceFeatures2(d->phys, &q2);
        d->token_clock = clk.shaderDeviceClock;
        clk = (VkPhysicalDeviceShaderClockFeaturesKHR){
            .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SHADER_CLOCK_FEATURES_KHR, .shaderDeviceClock = VK_TRUE};
        if (d->token_clock)
            names[n_names++] = VK_KHR_SHADER_CLOCK_EXTENSION_NAME;
    }
    free(e);
    /* the tensor-core kernel: the extension, its feature and F16 arithmetic (in shared memory only) */
    int cm = d->feat.coopmat != VK_COOPMAT_OFF;
    if (cm)
        names[n_names++] = VK_NV_COOPERATIVE_MATRIX_EXTENSION_NAME;
    VkPhysicalDevicePipelineExecutablePropertiesFeaturesKHR pe = {
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PIPELINE_EXECUTABLE_PROPERTIES_FEATURES_KHR,
        .pipelineExecutableInfo = VK_TRUE};
    VkPhysicalDeviceCooperativeMatrixFeaturesNV cf = {
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_COOPERATIVE_MATRIX_FEATURES_NV, .pNext = d->pipe_stats ? &pe : NULL,
        .cooperativeMatrix = VK_TRUE};
    VkPhysicalDeviceVulkan12Features f12 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_2_FEATURES,
                                            .pNext = &cf, .shaderFloat16 = VK_TRUE};
    VkPhysicalDeviceFeatures2 f2 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_FEATURES_2, .pNext = &f12};
    if (!cm) /* the statistics alone */
        f2.pNext = d->pipe_stats ? &pe : NULL;
    /* token7.comp indexes arrays of buffers (the model's and the state's blocks) */
    f2.features.shaderStorageBufferArrayDynamicIndexing = d->token_groups > 0;
    if (d->token_clock) {
        clk.pNext = f2.pNext;
        f2.pNext = &clk;
    }
    VkDeviceCreateInfo ci = {.sType = VK_STRUCTURE_TYPE_DEVICE_CREATE_INFO,
                             .pNext = cm || d->pipe_stats || d->token_groups > 0 ? &f2 : NULL,
                             .queueCreateInfoCount = 1, .pQueueCreateInfos = &q, .enabledExtensionCount = n_names,
                             .ppEnabledExtensionNames = names};
    VkResult r = vkCreateDevice(d->phys, &ci, NULL, &d->device);
    if (r != VK_SUCCESS)
        return vk_fail(d, r, err, "vkCreateDevice");
    vkGetDeviceQueue(d->device, d->queue_family, 0, &d->queue);
    return RWKV_OK;
}

/* A small device buffer bound where an optional input is absent (descriptors must be valid). */
static rwkv_status dummy_buffer(struct vk_dev *d, struct rwkv_error *err)
{
    struct vk_pool p;
    vk_pool_init(&p, 256, d->lim.align);
    struct vk_span s;
    rwkv_status st = vk_pool_reserve(&p, 256, &s, "dummy", err);
    if (!st)
        st = vk_pool_commit(d, &p, VK_BUFFER_USAGE_STORAGE_BUFFER_BIT, VK_MEM_DEVICE, err);
    if (st) {
        vk_pool_free(d, &p);
        return st;
    }
    d->dummy = p.blocks[0].buffer;
    d->dummy_mem = p.blocks[0].memory;
    free(p.blocks); /* the buffer and memory now belong to the device */
    return RWKV_OK;
}

static void dev_destroy(struct vk_dev *d)
{
    if (d->device) {
        vkDeviceWaitIdle(d->device);
        vk_pipelines_free(d);
        if (d->dummy)
            vkDestroyBuffer(d->device, d->dummy, NULL);
        if (d->dummy_mem)
            vkFreeMemory(d->device, d->dummy_mem, NULL);
        vkDestroyDevice(d->device, NULL);
    }
    if (d->instance)
        vkDestroyInstance(d->instance, NULL);
    if (d->lock_ok)
        pthread_mutex_destroy(&d->lock);
    free(d);
}

static void describe(struct rwkv_device *dev, const struct vk_dev *d)
{
    char api[16];
    api_string(d->props.apiVersion, api, sizeof api);
    char red[64];
    static const char *const cm[4] = {"", ", coopmat split", ", coopmat fp16", ", coopmat fallback"};
    if (d->feat.use_subgroup)
        snprintf(red, sizeof red, "subgroup %u%s", d->feat.subgroup_size, cm[d->feat.coopmat]);
    else
        snprintf(red, sizeof red, "no subgroup ops%s", cm[d->feat.coopmat]);
    snprintf(dev->description, sizeof dev->description, "vulkan: %s (%s %s, Vulkan %s, %s)", d->props.deviceName,
             vendor_name(d->props.vendorID), type_name(d->props.deviceType), api, red);
    if (!dev->options.verbose)
        return;
    const struct vk_features *f = &d->feat;
    static const char *const cm_use[4] = {"not used", "used for prefill, F16 x (hi + lo) F16 split",
                                          "used for prefill, F16 activations", "fp32 fallback forced (test)"};
    fprintf(stderr, "rwkv: vulkan features: subgroup %u with %s reductions, %s generation matmuls; fp16 %s, "
            "16-bit storage %s, integer dot %s (not used); cooperative matrix %s%s: %s; timestamps %s; storage "
            "buffer range %llu MiB, split at %llu MiB\n",
            f->subgroup_size, f->use_subgroup ? "subgroup" : "shared-memory",
            f->use_subgroup ? "16-byte-load" : "basic", f->fp16 ? "yes" : "no", f->storage16 ? "yes" : "no",
            f->int_dot ? "yes" : "no", f->coopmat_nv ? (f->coopmat_khr ? "nv+khr" : "nv") : (f->coopmat_khr ? "khr" : "no"),
            f->coopmat_f16 ? " (F16 16x16x16, F32 sums)" : "", cm_use[f->coopmat],
            f->ts_bits ? "yes" : "no", (unsigned long long)(d->lim.max_range >> 20),
            (unsigned long long)(d->lim.split_bytes >> 20));
    if (d->token_groups > 0)
        fprintf(stderr, "rwkv: vulkan: one-dispatch v7 generation steps on %d workgroups (multiprocessors: %u)\n",
                d->token_groups, f->sm_count);
    else
        fprintf(stderr, "rwkv: vulkan: no one-dispatch generation steps (multiprocessors: %u%s%s)\n", f->sm_count,
                f->dyn_index ? "" : ", no dynamic indexing of buffer arrays",
                f->subgroup_shuffle ? "" : ", no subgroup shuffles");
}

rwkv_status vk_device_open(struct rwkv_device *dev, struct rwkv_error *err)
{
    struct vk_dev *d = calloc(1, sizeof *d);
    if (!d)
        return rwkv_fail(err, RWKV_ERR_NOMEM, "out of memory");
    struct vk_phys_info *in = NULL;
    uint32_t n = 0;
    int pick = -1;
    rwkv_status st = RWKV_OK;
    if (pthread_mutex_init(&d->lock, NULL) != 0) {
        st = rwkv_fail(err, RWKV_ERR_NOMEM, "vulkan: cannot create a mutex");
        goto fail;
    }
    d->lock_ok = 1;
    if ((st = instance_new(&d->instance, err)) || (st = enumerate(d->instance, &in, &n, err)))
        goto fail;
    if (n == 0) {
        st = rwkv_fail(err, RWKV_ERR_UNSUPPORTED, "vulkan: the driver lists no devices");
        goto fail;
    }
    if ((st = choose(in, n, &dev->options, &pick, err)))
        goto fail;
    d->phys = in[pick].phys;
    d->props = in[pick].props;
    d->feat = in[pick].feat;
    d->feat.use_subgroup = d->feat.subgroup_arith && !env_flag("RWKV_VK_NO_SUBGROUP");
    d->feat.coopmat = coopmat_mode(&d->feat);
    const char *prof = getenv("RWKV_VK_PROFILE");
    d->profile = prof && *prof ? atoi(prof) : 0;
    d->table_copy = env_flag("RWKV_VK_TABLE_COPY");
    d->serial = env_flag("RWKV_VK_SERIAL");
    d->sparse_ffn = env_flag("RWKV_VK_SPARSE_FFN");
    const char *one = getenv("RWKV_VK_ONE_TOKEN");
    d->wkv7_one = one && strcmp(one, "0") == 0 ? 0 : one && strcmp(one, "nolora") == 0 ? 1 : 2;
    const char *spin = getenv("RWKV_VK_SPIN_US");
    d->spin_us = spin && *spin ? atoi(spin) : VK_SPIN_US;
    const char *tile = getenv("RWKV_VK_CM_TILE");
    d->cm_tile = !tile ? 0 : !strcmp(tile, "tiny") ? 1 : !strcmp(tile, "small") ? 2 : !strcmp(tile, "big") ? 3 : 0;
    if (tile && *tile && !d->cm_tile)
        fprintf(stderr, "rwkv: vulkan: ignoring RWKV_VK_CM_TILE=%s (not tiny, small or big)\n", tile);
    static const char *const tile_env[3] = {"RWKV_VK_CM_TINY", "RWKV_VK_CM_SMALL", "RWKV_VK_CM_BIG"};
    for (int i = 0; i < 3; i++) {
        const char *e = getenv(tile_env[i]);
        d->cm_tiles[i] = vk_cm_tiles[d->feat.coopmat == VK_COOPMAT_FP16][i];
        if (e && *e && !vk_cm_tile_parse(e, &d->cm_tiles[i]))
            fprintf(stderr, "rwkv: vulkan: ignoring %s=%s (not TM,TN,WM,WN,TK)\n", tile_env[i], e);
    }
    d->gemv_round = env_flag("RWKV_VK_GEMV_ROUND");
    const char *ks = getenv("RWKV_VK_KSPLIT");
    d->ksplit = ks && *ks ? atoi(ks) : -1;
    if (d->ksplit > VK_KSPLIT_MAX)
        d->ksplit = VK_KSPLIT_MAX;
    const char *wr = getenv("RWKV_VK_WKV7_ROWS");
    d->wkv7_rows = wr && *wr ? atoi(wr) : -1;
    const char *mf = getenv("RWKV_VK_MIX_FUSE");
    d->mix_fuse = !(mf && strcmp(mf, "0") == 0);
    const char *mw = getenv("RWKV_VK_MIX_WG"), *mp = getenv("RWKV_VK_MIX_PER_SM");
    d->mix_wg = mw && *mw ? atoi(mw) : 0;
    d->mix_per_sm = mp && *mp ? atoi(mp) : 0;
    const char *mu = getenv("RWKV_VK_MIX_UNROLL");
    d->mix_unroll = mu && *mu ? atoi(mu) : 0;
    const char *tk = getenv("RWKV_VK_PERSISTENT");
    /* off by default: on an H200 it was slower than the dispatches (PERF.md); "sm": one per multiprocessor */
    d->token_groups = !tk || !*tk ? 0 : !strcmp(tk, "sm") ? (int)d->feat.sm_count : atoi(tk);
    if (d->token_groups < 0 || d->token_groups > VK_TOKEN_MAX_GROUPS)
        d->token_groups = 0;
    if (!d->feat.dyn_index || !d->feat.subgroup_shuffle || !d->feat.use_subgroup)
        d->token_groups = 0;
    /* a CPU device runs workgroups one after another (lavapipe also caps loop iterations, so that a
     * barrier's wait ends without its count): one workgroup only */
    if (d->token_groups > 1 && d->props.deviceType == VK_PHYSICAL_DEVICE_TYPE_CPU) {
        fprintf(stderr, "rwkv: vulkan: RWKV_VK_PERSISTENT=%d taken as 1 on a CPU device\n", d->token_groups);
        d->token_groups = 1;
    }
    const char *gw = getenv("RWKV_VK_GEMV_WGS");
    d->gemv_wgs = gw && *gw ? atoi(gw) : 0;
    d->queue_family = in[pick].queue_family;
    vkGetPhysicalDeviceMemoryProperties(d->phys, &d->mem);
    set_limits(d, in[pick].max_alloc);
    if ((st = logical_device(d, err)) || (st = dummy_buffer(d, err)) || (st = vk_pipelines_init(d, err)))
        goto fail;
    free(in);
    dev->priv = d;
    describe(dev, d);
    return RWKV_OK;
fail:
    free(in);
    dev_destroy(d);
    return st;
}

void vk_device_free(struct rwkv_device *dev)
{
    if (dev->priv)
        dev_destroy(dev->priv);
    dev->priv = NULL;
}

/* ---- command buffers ---- */

rwkv_status vk_cmd_init(struct vk_dev *d, struct vk_cmd *c, struct rwkv_error *err)
{
    memset(c, 0, sizeof *c);
    VkCommandPoolCreateInfo pi = {.sType = VK_STRUCTURE_TYPE_COMMAND_POOL_CREATE_INFO,
                                  .flags = VK_COMMAND_POOL_CREATE_RESET_COMMAND_BUFFER_BIT,
                                  .queueFamilyIndex = d->queue_family};
    VkResult r = vkCreateCommandPool(d->device, &pi, NULL, &c->pool);
    if (r != VK_SUCCESS) {
        c->pool = VK_NULL_HANDLE;
        return vk_fail(d, r, err, "vkCreateCommandPool");
    }
    VkCommandBufferAllocateInfo ai = {.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO, .commandPool = c->pool,
                                      .level = VK_COMMAND_BUFFER_LEVEL_PRIMARY, .commandBufferCount = 1};
    if ((r = vkAllocateCommandBuffers(d->device, &ai, &c->cb)) != VK_SUCCESS)
        return vk_fail(d, r, err, "vkAllocateCommandBuffers");
    VkFenceCreateInfo fi = {.sType = VK_STRUCTURE_TYPE_FENCE_CREATE_INFO};
    if ((r = vkCreateFence(d->device, &fi, NULL, &c->fence)) != VK_SUCCESS) {
        c->fence = VK_NULL_HANDLE;
        return vk_fail(d, r, err, "vkCreateFence");
    }
    return RWKV_OK;
}

void vk_cmd_free(struct vk_dev *d, struct vk_cmd *c)
{
    if (c->fence)
        vkDestroyFence(d->device, c->fence, NULL);
    if (c->pool)
        vkDestroyCommandPool(d->device, c->pool, NULL); /* frees the command buffer too */
    memset(c, 0, sizeof *c);
}

rwkv_status vk_cmd_begin(struct vk_dev *d, struct vk_cmd *c, struct rwkv_error *err)
{
    if (d->lost)
        return rwkv_fail(err, RWKV_ERR_DEVICE, "vulkan: the device was lost earlier");
    VkCommandBufferBeginInfo bi = {.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO,
                                   .flags = c->reusable ? 0 : VK_COMMAND_BUFFER_USAGE_ONE_TIME_SUBMIT_BIT};
    VkResult r = vkBeginCommandBuffer(c->cb, &bi);
    if (r != VK_SUCCESS)
        return vk_fail(d, r, err, "vkBeginCommandBuffer");
    vk_barrier_all(c->cb);
    return RWKV_OK;
}

rwkv_status vk_cmd_end(struct vk_dev *d, struct vk_cmd *c, struct rwkv_error *err)
{
    vk_barrier_all(c->cb);
    VkResult r = vkEndCommandBuffer(c->cb);
    return r == VK_SUCCESS ? RWKV_OK : vk_fail(d, r, err, "vkEndCommandBuffer");
}

rwkv_status vk_cmd_submit(struct vk_dev *d, struct vk_cmd *c, struct rwkv_error *err)
{
    rwkv_status st = vk_cmd_end(d, c, err);
    return st ? st : vk_cmd_exec(d, c, err);
}

rwkv_status vk_cmd_exec(struct vk_dev *d, struct vk_cmd *c, struct rwkv_error *err)
{
    rwkv_status st = vk_cmd_start(d, c, err);
    return st ? st : vk_cmd_wait(d, c, err);
}

rwkv_status vk_cmd_start(struct vk_dev *d, struct vk_cmd *c, struct rwkv_error *err)
{
    if (d->lost)
        return rwkv_fail(err, RWKV_ERR_DEVICE, "vulkan: the device was lost earlier");
    VkSubmitInfo si = {.sType = VK_STRUCTURE_TYPE_SUBMIT_INFO, .commandBufferCount = 1, .pCommandBuffers = &c->cb};
    pthread_mutex_lock(&d->lock);
    VkResult r = vkQueueSubmit(d->queue, 1, &si, c->fence);
    pthread_mutex_unlock(&d->lock);
    return r == VK_SUCCESS ? RWKV_OK : vk_fail(d, r, err, "vkQueueSubmit");
}

rwkv_status vk_cmd_wait(struct vk_dev *d, struct vk_cmd *c, struct rwkv_error *err)
{
    VkResult r;
    /* polled first (a blocking wait can return tens of microseconds after the GPU is done, much of a
     * generation step), for at most spin_us; then blocking */
    double t0 = d->spin_us > 0 ? rwkv_time_seconds() : 0;
    while (d->spin_us > 0 && (r = vkGetFenceStatus(d->device, c->fence)) == VK_NOT_READY &&
           rwkv_time_seconds() - t0 < 1e-6 * d->spin_us)
        ;
    if ((r = vkWaitForFences(d->device, 1, &c->fence, VK_TRUE, UINT64_MAX)) != VK_SUCCESS)
        return vk_fail(d, r, err, "vkWaitForFences");
    if ((r = vkResetFences(d->device, 1, &c->fence)) != VK_SUCCESS)
        return vk_fail(d, r, err, "vkResetFences");
    return RWKV_OK;
}

void vk_barrier_all(VkCommandBuffer cb)
{
    VkMemoryBarrier b = {.sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER,
                         .srcAccessMask = VK_ACCESS_MEMORY_WRITE_BIT,
                         .dstAccessMask = VK_ACCESS_MEMORY_READ_BIT | VK_ACCESS_MEMORY_WRITE_BIT};
    vkCmdPipelineBarrier(cb, VK_PIPELINE_STAGE_ALL_COMMANDS_BIT,
                         VK_PIPELINE_STAGE_ALL_COMMANDS_BIT | VK_PIPELINE_STAGE_HOST_BIT, 0, 1, &b, 0, NULL, 0, NULL);
}

/* ---- timestamps ---- */

rwkv_status vk_timer_init(struct vk_dev *d, struct vk_timer *t, uint32_t cap, struct rwkv_error *err)
{
    memset(t, 0, sizeof *t);
    if (!d->feat.ts_bits || d->props.limits.timestampPeriod <= 0)
        return RWKV_OK;
    VkQueryPoolCreateInfo qi = {.sType = VK_STRUCTURE_TYPE_QUERY_POOL_CREATE_INFO,
                                .queryType = VK_QUERY_TYPE_TIMESTAMP, .queryCount = cap};
    VkResult r = vkCreateQueryPool(d->device, &qi, NULL, &t->pool);
    if (r != VK_SUCCESS) {
        t->pool = VK_NULL_HANDLE;
        return vk_fail(d, r, err, "vkCreateQueryPool");
    }
    t->cap = cap;
    return RWKV_OK;
}

void vk_timer_free(struct vk_dev *d, struct vk_timer *t)
{
    if (t->pool)
        vkDestroyQueryPool(d->device, t->pool, NULL);
    memset(t, 0, sizeof *t);
}

void vk_timer_reset(VkCommandBuffer cb, struct vk_timer *t)
{
    t->n = 0;
    if (t->pool)
        vkCmdResetQueryPool(cb, t->pool, 0, t->cap);
}

int vk_timer_mark(VkCommandBuffer cb, struct vk_timer *t)
{
    if (!t->pool || t->n == t->cap)
        return -1;
    vkCmdWriteTimestamp(cb, VK_PIPELINE_STAGE_BOTTOM_OF_PIPE_BIT, t->pool, t->n);
    return (int)t->n++;
}

rwkv_status vk_timer_read(struct vk_dev *d, struct vk_timer *t, double *ns, struct rwkv_error *err)
{
    if (!t->pool || t->n == 0)
        return RWKV_OK;
    uint64_t *v = malloc(t->n * sizeof *v);
    if (!v)
        return rwkv_fail(err, RWKV_ERR_NOMEM, "out of memory");
    VkResult r = vkGetQueryPoolResults(d->device, t->pool, 0, t->n, t->n * sizeof *v, v, sizeof *v,
                                       VK_QUERY_RESULT_64_BIT | VK_QUERY_RESULT_WAIT_BIT);
    uint64_t mask = d->feat.ts_bits >= 64 ? ~(uint64_t)0 : (((uint64_t)1 << d->feat.ts_bits) - 1);
    for (uint32_t i = 0; r == VK_SUCCESS && i < t->n; i++)
        ns[i] = (double)((v[i] - v[0]) & mask) * d->props.limits.timestampPeriod;
    free(v);
    return r == VK_SUCCESS ? RWKV_OK : vk_fail(d, r, err, "vkGetQueryPoolResults");
}
