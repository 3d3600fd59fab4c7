#version 450
// Row-wise ops, by MODE: 0 LERP out = a + (b - a) * (mix + dyn); 1 MULADD out += a * b; 2 COPY out = a;
// 3 GATHER out[r] = a[out_rows[out_base + r]]. Out may be the same buffer as an input (in place).
#extension GL_GOOGLE_include_directive : require

layout(constant_id = 0) const uint WG = 64;
layout(constant_id = 1) const uint MODE = 0;
layout(local_size_x_id = 0) in;

#include "common.glsl"
layout(std430, binding = 0) buffer OutBuf { float y[]; };
layout(std430, binding = 1) readonly buffer In0 { float a[]; };
layout(std430, binding = 2) readonly buffer In1 { float b[]; };
layout(std430, binding = 3) readonly buffer In2 { float dyn[]; };
layout(std430, binding = 4) readonly buffer MixBuf { float mixv[]; };
#define CHUNK_BINDING 5
#include "chunk.glsl"

void main()
{
    for (uint t = gl_WorkGroupID.y; t < pc.rows; t += gl_NumWorkGroups.y) {
        for (uint c = gl_GlobalInvocationID.x; c < pc.width; c += gl_NumWorkGroups.x * WG) {
            uint o = out_at(t, c);
            if (MODE == 0u) {
                float xa = a[in_at(0u, t, c)], xb = b[in_at(1u, t, c)];
                float m = (has_w(0u) ? mixv[c] : 0.0) + (has_in(2u) ? dyn[in_at(2u, t, c)] : 0.0);
                y[o] = xa + (xb - xa) * m;
            } else if (MODE == 1u) {
                y[o] += a[in_at(0u, t, c)] * b[in_at(1u, t, c)];
            } else if (MODE == 2u) {
                y[o] = a[in_at(0u, t, c)];
            } else {
                y[o] = a[in_at(0u, ck_out_row(pc.out_base + t), c)];
            }
        }
    }
}
