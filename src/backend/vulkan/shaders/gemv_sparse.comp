#version 450
// MATMUL of one token whose input is mostly zeros (the FFN value after ReLU^2, RWKV_VK_SPARSE_FFN=1):
// y[row0 + o] (+)= act(sum_k a[k] W[o][k] + bias) from W^T [K][N] (F16, transposed at load), reading
// only the rows of W^T whose a[k] is not zero: the bytes fall with the input's zeros (half of them for
// random weights, most for trained ones). A workgroup takes OPW outputs; its invocations go in groups
// of OPW / 8, group g over k = g, g + G, ... (G groups), each invocation 8 outputs from one 16-byte
// load per k; the groups' sums are added in a fixed order (deterministic), then the MATMUL epilogue.
// Needs N % 8 == 0 (vk_backend.c checks).
#extension GL_GOOGLE_include_directive : require
#extension GL_EXT_control_flow_attributes : require

layout(constant_id = 0) const uint WG = 256;
layout(constant_id = 1) const uint OPW = 32; // outputs per workgroup, a multiple of 8
layout(local_size_x_id = 0) in;

#include "common.glsl"
layout(std430, binding = 0) buffer OutBuf { float y[]; };
layout(std430, binding = 1) readonly buffer InBuf { float a[]; };
layout(std430, binding = 2) readonly buffer WBuf { uvec4 wt4[]; }; // W^T: K rows of N F16, 8 per uvec4
layout(std430, binding = 3) readonly buffer BiasBuf { float bias[]; };
#include "matmul_out.glsl"

const uint TPK = OPW / 8u;  // invocations per k
const uint G = WG / TPK;    // k groups
const uint U = 4u;          // k per group and round: loads issued together
shared float red[G * OPW];

void main()
{
    uint tid = gl_LocalInvocationID.x, g = tid / TPK, j = tid % TPK, N8 = pc.nrows / 8u;
    for (uint ob = gl_WorkGroupID.x; ob * OPW < pc.nrows; ob += gl_NumWorkGroups.x) {
        uint c8 = ob * (OPW / 8u) + j; // this invocation's 8 outputs: 8 c8 ..
        bool live = c8 < N8;
        float acc[8];
        [[unroll]] for (uint i = 0u; i < 8u; i++)
            acc[i] = 0.0;
        for (uint k0 = g; k0 < pc.k; k0 += U * G) {
            float av[U];
            uvec4 w[U];
            [[unroll]] for (uint u = 0u; u < U; u++) {
                uint k = k0 + u * G;
                av[u] = k < pc.k ? a[in_at(0u, 0u, k)] : 0.0;
            }
            [[unroll]] for (uint u = 0u; u < U; u++)
                w[u] = av[u] != 0.0 && live ? wt4[(k0 + u * G) * N8 + c8] : uvec4(0u);
            [[unroll]] for (uint u = 0u; u < U; u++) {
                vec2 p0 = unpackHalf2x16(w[u].x), p1 = unpackHalf2x16(w[u].y), p2 = unpackHalf2x16(w[u].z),
                     p3 = unpackHalf2x16(w[u].w);
                acc[0] += av[u] * p0.x;
                acc[1] += av[u] * p0.y;
                acc[2] += av[u] * p1.x;
                acc[3] += av[u] * p1.y;
                acc[4] += av[u] * p2.x;
                acc[5] += av[u] * p2.y;
                acc[6] += av[u] * p3.x;
                acc[7] += av[u] * p3.y;
            }
        }
        [[unroll]] for (uint i = 0u; i < 8u; i++)
            red[g * OPW + 8u * j + i] = acc[i];
        barrier();
        if (tid < OPW && ob * OPW + tid < pc.nrows) {
            float s = 0.0;
            for (uint q = 0u; q < G; q++)
                s += red[q * OPW + tid];
            mm_store(ob * OPW + tid, 0u, s);
        }
        barrier();
    }
}
