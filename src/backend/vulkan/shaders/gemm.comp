#version 450
// MATMUL for many tokens (prefill) on any device: y[t][row0 + o] (+)= act(W[o] . x[t] + bias) in tiles
// of 64 tokens x 64 rows per workgroup of 256. K advances 16 at a time through shared memory, and each
// invocation sums 4 tokens x 4 rows in fp32 registers, so that every element loaded from shared memory
// serves 4 products. Any K and any view: loads are bounds-checked.
#extension GL_GOOGLE_include_directive : require

layout(constant_id = 0) const uint WG = 256; // 16 x 16 invocations: the tile arithmetic assumes it
layout(local_size_x_id = 0) in;

#include "common.glsl"
layout(std430, binding = 0) buffer OutBuf { float y[]; };
layout(std430, binding = 1) readonly buffer InBuf { float x[]; };
#define W_BINDING 2
#include "weights.glsl"
layout(std430, binding = 3) readonly buffer BiasBuf { float bias[]; };
#include "matmul_out.glsl"

const uint TILE = 64u, BK = 16u;
// [k][token], [k][row]; the extra column spreads the transposing stores over the banks
shared float xs[BK][TILE + 1u], ws[BK][TILE + 1u];

void main()
{
    uint tid = gl_LocalInvocationID.x, tx = tid % 16u, ty = tid / 16u, K = pc.k;
    uint n_rb = (pc.nrows + TILE - 1u) / TILE, n_tb = (pc.rows + TILE - 1u) / TILE;
    // token tiles along x: the workgroups running together share a weight tile, read from memory once
    for (uint rb = gl_WorkGroupID.y; rb < n_rb; rb += gl_NumWorkGroups.y) {
        for (uint tb = gl_WorkGroupID.x; tb < n_tb; tb += gl_NumWorkGroups.x) {
            uint t0 = tb * TILE, r0 = rb * TILE;
            float acc[4][4];
            for (uint i = 0u; i < 4u; i++)
                for (uint j = 0u; j < 4u; j++)
                    acc[i][j] = 0.0;
            for (uint k0 = 0u; k0 < K; k0 += BK) {
                // 4 elements of each tile per invocation, k fastest: each row's run of K is read in order
                for (uint i = 0u; i < 4u; i++) {
                    uint e = tid + i * 256u, r = e / BK, k = e % BK, kk = k0 + k;
                    uint t = t0 + r, row = r0 + r;
                    xs[k][r] = t < pc.rows && kk < K ? x[in_at(0u, t, kk)] : 0.0;
                    ws[k][r] = row < pc.nrows && kk < K ? w_at(row * K + kk) : 0.0;
                }
                barrier();
                for (uint k = 0u; k < BK; k++) {
                    float a[4], b[4];
                    for (uint i = 0u; i < 4u; i++) {
                        a[i] = xs[k][ty + 16u * i];
                        b[i] = ws[k][tx + 16u * i];
                    }
                    for (uint i = 0u; i < 4u; i++)
                        for (uint j = 0u; j < 4u; j++)
                            acc[i][j] += a[i] * b[j];
                }
                barrier();
            }
            // rows tx + 16 j: neighbouring invocations store neighbouring columns of y
            for (uint i = 0u; i < 4u; i++)
                for (uint j = 0u; j < 4u; j++) {
                    uint tok = t0 + ty + 16u * i, row = r0 + tx + 16u * j;
                    if (tok < pc.rows && row < pc.nrows)
                        mm_store(row, tok, acc[i][j]);
                }
        }
    }
}
