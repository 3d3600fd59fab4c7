#version 450
// Brings a weight part into the GPU's L2 cache ahead of the MATMUL that reads it: vk_exec.c records it
// during a generation level that streams no weights (the layer norms, WKV7), for the matrices of the
// levels that follow, so that their GEMVs read the cache. Bound with the MATMUL's own descriptor set
// (binding 2: the weight part, pc.width 16-byte blocks). The loads are kept by a store that never
// happens (pc.flags is never all ones).
#extension GL_GOOGLE_include_directive : require

layout(constant_id = 0) const uint WG = 256;
layout(local_size_x_id = 0) in;

#include "common.glsl"
layout(std430, binding = 0) buffer OutBuf { uint y[]; };
layout(std430, binding = 2) readonly buffer WBuf { uvec4 w4[]; };

void main()
{
    uint stride = gl_NumWorkGroups.x * WG, n = pc.width;
    uvec4 acc = uvec4(0u);
    for (uint i = gl_GlobalInvocationID.x; i < n; i += 4u * stride) {
        uvec4 a = w4[i];
        uvec4 b = i + stride < n ? w4[i + stride] : uvec4(0u);
        uvec4 c = i + 2u * stride < n ? w4[i + 2u * stride] : uvec4(0u);
        uvec4 d = i + 3u * stride < n ? w4[i + 3u * stride] : uvec4(0u);
        acc ^= a ^ b ^ c ^ d;
    }
    if (pc.flags == 0xffffffffu)
        y[0] = acc.x ^ acc.y ^ acc.z ^ acc.w;
}
