#version 450
// Up to 7 independent one-token MATMULs in one dispatch (v7's r, k, v and the four LoRA down
// projections; v5/v6's r, k, v, g): the grid is cut into each job's share of workgroups, and a
// workgroup runs gemv.comp's loop for its job's rows (one token). Saves a launch per job and lets
// the short jobs fill the long ones' tail.
// Bindings: 0 the runtime buffers' block (float), 1 the same block (vec4, for x), 2-8 each job's
// matrix (F16 as uvec4 with W_F16, else vec4 pairs), 9-15 each job's bias (or a dummy).
// Push constants (vk_exec.c, struct vk_group_push): the job count, then per job 4 words:
//   x offset (floats, a multiple of 4), y offset (floats),
//   first workgroup << 0 (16 bits) | rows << 16,
//   K | act << 16 | bias << 20 | accumulate << 21 | log2(rows per workgroup) << 22.
// Needs K % 8 == 0.
#extension GL_GOOGLE_include_directive : require
#extension GL_EXT_control_flow_attributes : require
#define USE_SUBGROUP
#include "subgroup.glsl"

layout(constant_id = 0) const uint WG = 128;
layout(local_size_x_id = 0) in;

layout(push_constant) uniform GroupPush {
    uint n_jobs;
    uint jw[28]; // job j: words 4 j .. 4 j + 3
} gp;

uvec4 job(uint j) { return uvec4(gp.jw[4u * j], gp.jw[4u * j + 1u], gp.jw[4u * j + 2u], gp.jw[4u * j + 3u]); }

layout(std430, binding = 0) buffer YBuf { float y[]; };
layout(std430, binding = 1) readonly buffer XBuf { vec4 x4[]; };
#ifdef W_F16
#define WT uvec4
#else
#define WT vec4
#endif
layout(std430, binding = 2) readonly buffer W0 { WT w0[]; };
layout(std430, binding = 3) readonly buffer W1 { WT w1[]; };
layout(std430, binding = 4) readonly buffer W2 { WT w2[]; };
layout(std430, binding = 5) readonly buffer W3 { WT w3[]; };
layout(std430, binding = 6) readonly buffer W4 { WT w4[]; };
layout(std430, binding = 7) readonly buffer W5 { WT w5[]; };
layout(std430, binding = 8) readonly buffer W6 { WT w6[]; };
layout(std430, binding = 9) readonly buffer B0 { float b0[]; };
layout(std430, binding = 10) readonly buffer B1 { float b1[]; };
layout(std430, binding = 11) readonly buffer B2 { float b2[]; };
layout(std430, binding = 12) readonly buffer B3 { float b3[]; };
layout(std430, binding = 13) readonly buffer B4 { float b4[]; };
layout(std430, binding = 14) readonly buffer B5 { float b5[]; };
layout(std430, binding = 15) readonly buffer B6 { float b6[]; };

const uint UNROLL = 4u;
shared float part[WG];

float act_apply(uint act, float z)
{
    switch (act) {
    case 1u: return 1.0 / (1.0 + exp(-z));
    case 2u: return tanh(clamp(z, -15.0, 15.0));
    case 3u: return z > 0.0 ? z * z : 0.0;
    case 4u: return z / (1.0 + exp(-z));
    case 5u: return exp(-exp(z));
    case 6u: return exp(-0.60653065971263342 / (1.0 + exp(-z)));
    default: return z;
    }
}

#ifdef W_F16
#define W_BLOCK(W, b, lo, hi)                                                      \
    {                                                                              \
        uvec4 q_ = W[b];                                                           \
        lo = vec4(unpackHalf2x16(q_.x), unpackHalf2x16(q_.y));                     \
        hi = vec4(unpackHalf2x16(q_.z), unpackHalf2x16(q_.w));                     \
    }
#else
#define W_BLOCK(W, b, lo, hi) { lo = W[2u * (b)]; hi = W[2u * (b) + 1u]; }
#endif

// Row `row` of matrix W (K8 blocks per row), this lane's share: blocks kpart SG + lane, then every
// step; x from vec4 xb on.
#define ROW_DOT(W, row, K8, xb, kpart, step, acc)                                  \
    {                                                                              \
        uint wrow_ = (row) * (K8);                                                 \
        for (uint b0 = (kpart) * SG + lane; b0 < (K8); b0 += (step)) {             \
            vec4 lo[UNROLL], hi[UNROLL];                                           \
            [[unroll]] for (uint u = 0u; u < UNROLL; u++) {                        \
                lo[u] = hi[u] = vec4(0.0);                                         \
                if (b0 + u * SG * KS < (K8))                                       \
                    W_BLOCK(W, wrow_ + b0 + u * SG * KS, lo[u], hi[u]);            \
            }                                                                      \
            [[unroll]] for (uint u = 0u; u < UNROLL; u++) {                        \
                uint b = min(b0 + u * SG * KS, (K8) - 1u);                         \
                acc += dot(lo[u], x4[(xb) + 2u * b]) + dot(hi[u], x4[(xb) + 2u * b + 1u]); \
            }                                                                      \
        }                                                                          \
    }

void main()
{
    uint lane = gl_SubgroupInvocationID, sg = gl_SubgroupID, SG = gl_SubgroupSize, NS = NUM_SUBGROUPS(WG);
    uint wg = gl_WorkGroupID.x, j = 0u;
    while (j + 1u < gp.n_jobs && wg >= (job(j + 1u).z & 0xffffu))
        j++;
    uvec4 jb = job(j);
    uint nrows = jb.z >> 16, K = jb.w & 0xffffu, act = (jb.w >> 16) & 15u;
    bool has_bias = (jb.w & (1u << 20)) != 0u, accum = (jb.w & (1u << 21)) != 0u;
    uint ROWS = 1u << ((jb.w >> 22) & 7u);
    uint KS = max(NS / ROWS, 1u), kpart = sg % KS, step = UNROLL * SG * KS, K8 = K >> 3;
    uint rb = wg - (jb.z & 0xffffu), xb = jb.x >> 2;
    // every subgroup makes the same number of passes: the barriers below stay uniform
    for (uint r = sg / KS; r < ROWS; r += NS / KS) {
        uint row = rb * ROWS + r, wr = min(row, nrows - 1u);
        float acc = 0.0;
        switch (j) {
        case 0u: ROW_DOT(w0, wr, K8, xb, kpart, step, acc); break;
        case 1u: ROW_DOT(w1, wr, K8, xb, kpart, step, acc); break;
        case 2u: ROW_DOT(w2, wr, K8, xb, kpart, step, acc); break;
        case 3u: ROW_DOT(w3, wr, K8, xb, kpart, step, acc); break;
        case 4u: ROW_DOT(w4, wr, K8, xb, kpart, step, acc); break;
        case 5u: ROW_DOT(w5, wr, K8, xb, kpart, step, acc); break;
        default: ROW_DOT(w6, wr, K8, xb, kpart, step, acc); break;
        }
        float s = subgroupAdd(acc);
        if (KS > 1u) {
            if (lane == 0u)
                part[sg] = s;
            barrier();
            s = 0.0;
            for (uint q = 0u; q < KS; q++)
                s += part[sg - kpart + q];
            barrier();
        }
        if (kpart == 0u && lane == 0u && row < nrows) {
            float bias = 0.0;
            if (has_bias) {
                switch (j) {
                case 0u: bias = b0[row]; break;
                case 1u: bias = b1[row]; break;
                case 2u: bias = b2[row]; break;
                case 3u: bias = b3[row]; break;
                case 4u: bias = b4[row]; break;
                case 5u: bias = b5[row]; break;
                default: bias = b6[row]; break;
                }
            }
            float v = act_apply(act, s + bias);
            uint o = jb.y + row;
            y[o] = accum ? y[o] + v : v;
        }
    }
}
