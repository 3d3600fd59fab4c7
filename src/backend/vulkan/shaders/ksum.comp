#version 450
// The second half of a GEMM_CM split along K (gemm_cm.comp): y[t][row0 + row] (+)= act(sum of the
// parts' raw sums, in part order, + bias), with the MATMUL epilogue (matmul_out.glsl). One invocation
// per (token, row); the same bindings and push constants as the split dispatch.
#extension GL_GOOGLE_include_directive : require

layout(local_size_x = 256) in;

#include "common.glsl"
layout(std430, binding = 0) buffer OutBuf { float y[]; };
layout(std430, binding = 3) readonly buffer BiasBuf { float bias[]; };
#include "matmul_out.glsl"
layout(std430, binding = 7) readonly buffer ScratchBuf { float part_sum[]; };

void main()
{
    uint n = pc.rows * pc.nrows, P = max(pc.state_stride, 1u);
    for (uint e = gl_GlobalInvocationID.x; e < n; e += gl_NumWorkGroups.x * 256u) {
        float s = 0.0;
        for (uint z = 0u; z < P; z++)
            s += part_sum[z * n + e];
        mm_store(e % pc.nrows, e / pc.nrows, s);
    }
}
