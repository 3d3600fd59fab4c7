#version 450
// MATMUL: y[t][row0 + o] (+)= act(sum_k W[o][k] x[t][k] + bias[row0 + o]) for the rows o of one weight
// part. A workgroup computes ROWS output rows for TOK tokens at a time: each weight element it loads
// serves TOK tokens, and the K dimension is split over the invocations, then reduced. fp32
// accumulation. The workgroup walks the token tiles itself (grid y is 1), so its rows are read from
// memory once per chunk and from cache for the following tiles.
#extension GL_GOOGLE_include_directive : require
#include "subgroup.glsl"

layout(constant_id = 0) const uint WG = 64;
layout(constant_id = 1) const uint ROWS = 4;
layout(constant_id = 2) const uint TOK = 4;
layout(local_size_x_id = 0) in;

#include "common.glsl"
layout(std430, binding = 0) buffer OutBuf { float y[]; };
layout(std430, binding = 1) readonly buffer InBuf { float x[]; };
#define W_BINDING 2
#include "weights.glsl"
layout(std430, binding = 3) readonly buffer BiasBuf { float bias[]; };
#include "matmul_out.glsl"

const uint RT = ROWS * TOK;
shared float red[WG * RT];
float acc[RT]; // this invocation's partial sums, [row][token]

void store(uint i, float v, uint r0, uint t0)
{
    uint row = r0 + i / TOK, tok = t0 + i % TOK;
    if (row < pc.nrows && tok < pc.rows)
        mm_store(row, tok, v);
}

// Sums acc[i] over the workgroup and stores element i.
void reduce_store(uint r0, uint t0)
{
    uint tid = gl_LocalInvocationID.x;
#ifdef USE_SUBGROUP
    for (uint i = 0u; i < RT; i++) {
        float s = subgroupAdd(acc[i]);
        if (subgroupElect())
            red[gl_SubgroupID * RT + i] = s;
    }
    barrier();
    for (uint i = tid; i < RT; i += WG) {
        float s = 0.0;
        for (uint g = 0u; g < NUM_SUBGROUPS(WG); g++)
            s += red[g * RT + i];
        store(i, s, r0, t0);
    }
#else
    for (uint i = 0u; i < RT; i++)
        red[i * WG + tid] = acc[i];
    barrier();
    uint p = 1u;
    while (p < WG)
        p <<= 1;
    for (uint s = p >> 1; s > 0u; s >>= 1) {
        if (tid < s && tid + s < WG)
            for (uint i = 0u; i < RT; i++)
                red[i * WG + tid] += red[i * WG + tid + s];
        barrier();
    }
    for (uint i = tid; i < RT; i += WG)
        store(i, red[i * WG], r0, t0);
#endif
    barrier();
}

void main()
{
    uint tid = gl_LocalInvocationID.x, K = pc.k;
    uint n_rb = (pc.nrows + ROWS - 1u) / ROWS, n_tb = (pc.rows + TOK - 1u) / TOK;
    for (uint rb = gl_WorkGroupID.x; rb < n_rb; rb += gl_NumWorkGroups.x) {
        for (uint tb = gl_WorkGroupID.y; tb < n_tb; tb += gl_NumWorkGroups.y) {
            uint r0 = rb * ROWS, t0 = tb * TOK;
            // rows and tokens past the end are clamped to valid ones and not stored
            uint wrow[ROWS], xrow[TOK];
            for (uint r = 0u; r < ROWS; r++)
                wrow[r] = min(r0 + r, pc.nrows - 1u) * K;
            for (uint t = 0u; t < TOK; t++)
                xrow[t] = min(t0 + t, pc.rows - 1u) * pc.in_stride[0] + pc.in_col[0];
            for (uint i = 0u; i < RT; i++)
                acc[i] = 0.0;
            if ((K & 1u) == 0u) {
                for (uint k = 2u * tid; k < K; k += 2u * WG) {
                    vec2 xv[TOK];
                    for (uint t = 0u; t < TOK; t++)
                        xv[t] = vec2(x[xrow[t] + k], x[xrow[t] + k + 1u]);
                    for (uint r = 0u; r < ROWS; r++) {
                        vec2 wv = w_pair(wrow[r] + k);
                        for (uint t = 0u; t < TOK; t++)
                            acc[r * TOK + t] += wv.x * xv[t].x + wv.y * xv[t].y;
                    }
                }
            } else {
                for (uint k = tid; k < K; k += WG) {
                    for (uint r = 0u; r < ROWS; r++) {
                        float wv = w_at(wrow[r] + k);
                        for (uint t = 0u; t < TOK; t++)
                            acc[r * TOK + t] += wv * x[xrow[t] + k];
                    }
                }
            }
            reduce_store(r0, t0);
        }
    }
}
