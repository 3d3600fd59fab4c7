#version 450
// LAYERNORM: out = (x - mean) / sqrt(var + eps) * w + b per row, one workgroup per row. Two passes
// (mean, then the variance of x - mean) as the CPU reference does.
#extension GL_GOOGLE_include_directive : require
#include "subgroup.glsl"

layout(constant_id = 0) const uint WG = 128;
layout(local_size_x_id = 0) in;

#include "common.glsl"
#include "reduce.glsl"
layout(std430, binding = 0) buffer OutBuf { float y[]; };
layout(std430, binding = 1) readonly buffer InBuf { float x[]; };
layout(std430, binding = 2) readonly buffer WBuf { float lw[]; };
layout(std430, binding = 3) readonly buffer BBuf { float lb[]; };

void main()
{
    uint tid = gl_LocalInvocationID.x, n = pc.width;
    for (uint t = gl_WorkGroupID.x; t < pc.rows; t += gl_NumWorkGroups.x) {
        float s = 0.0;
        for (uint c = tid; c < n; c += WG)
            s += x[in_at(0u, t, c)];
        float mean = wg_sum(s) / float(n);
        float v = 0.0;
        for (uint c = tid; c < n; c += WG) {
            float d = x[in_at(0u, t, c)] - mean;
            v += d * d;
        }
        float inv = 1.0 / sqrt(wg_sum(v) / float(n) + pc.eps);
        for (uint c = tid; c < n; c += WG)
            y[out_at(t, c)] = (x[in_at(0u, t, c)] - mean) * inv * lw[c] + lb[c];
    }
}
