#version 450
// The copy-bandwidth yardstick (vk_backend.c): out = in over pc.width uvec4, 16-byte loads and stores
// in a grid-stride loop, as a weight-streaming kernel would move memory.
#extension GL_GOOGLE_include_directive : require

layout(constant_id = 0) const uint WG = 256;
layout(local_size_x_id = 0) in;

#include "common.glsl"
layout(std430, binding = 0) writeonly buffer OutBuf { uvec4 dst[]; };
layout(std430, binding = 1) readonly buffer InBuf { uvec4 src[]; };

void main()
{
    for (uint i = gl_GlobalInvocationID.x; i < pc.width; i += gl_NumWorkGroups.x * WG)
        dst[i] = src[i];
}
