#version 450
// MATMUL for a few tokens (generation), bound by streaming the weights: y[t][row0 + o] (+)=
// act(W[o] . x[t] + bias). The workgroup's subgroups share out its ROWS rows, and split each row's K
// among themselves when there are more subgroups than rows (fewer, longer rows: so that each lane has
// about UNROLL blocks to load, all in flight at once). A lane strides over K in blocks of 8 elements
// (one 16-byte load of F16, two of F32); subgroupAdd, then shared memory, reduce. Each weight byte is
// read once per TOK tokens. Needs K % 8 == 0 and x rows on 16-byte boundaries (vk_backend.c checks).
// (Tried: x kept in registers while a workgroup streams 8 rows: 10-40% slower on an H200.)
#extension GL_GOOGLE_include_directive : require
#extension GL_EXT_control_flow_attributes : require
#define USE_SUBGROUP
#include "subgroup.glsl"

layout(constant_id = 0) const uint WG = 128;
layout(constant_id = 1) const uint ROWS = 4; // rows per workgroup (a power of 2)
layout(constant_id = 2) const uint TOK = 1;  // tokens per pass over the rows
layout(constant_id = 3) const uint UNROLL = 4; // 16-byte weight loads per lane and round, all in flight
layout(constant_id = 4) const uint KMAX = 4;   // MIX: the staged input's floats (K)
layout(local_size_x_id = 0) in;

#include "common.glsl"
layout(std430, binding = 0) buffer OutBuf { float y[]; };
layout(std430, binding = 1) readonly buffer InBuf { vec4 x4[]; };
#ifdef W_F16
layout(std430, binding = 2) readonly buffer WBuf { uvec4 w4[]; };
#else
layout(std430, binding = 2) readonly buffer WBuf { vec4 w4[]; };
#endif
layout(std430, binding = 3) readonly buffer BiasBuf { float bias[]; };
#include "matmul_out.glsl"

shared float part[WG * TOK]; // each subgroup's sums of its share of a row, [subgroup][token]

#ifdef MIX
// One token (TOK 1), its input made here instead of by a NORMMIX dispatch before (vk_exec.c): every
// workgroup takes the layer norm of x (two passes, as normmix_one.comp) and the LERP of it with the
// slot's shift state by the group's mix j, into shared memory; workgroup 0 of one consumer also
// writes the norm's output (the shift state gets it after every consumer has read the state).
// Binding 1 is then x (in view 0), 8 the group's parameters ([2 + 6][K]: norm weight, bias, mixes),
// 9 the shift state, 10 the chunk table, 11 the norm's output (in view 4). pc.heads: j, bit 8 the
// LERP's swap (sx first), bit 16 this dispatch writes the norm's output.
#include "reduce.glsl"
layout(std430, binding = 1) readonly buffer InF { float xf[]; };
layout(std430, binding = 8) readonly buffer MixPrm { float prm[]; };
layout(std430, binding = 9) readonly buffer MixState { float mst[]; };
#define CHUNK_BINDING 10
#include "chunk.glsl"
layout(std430, binding = 11) writeonly buffer MixOut { float xxo[]; };
shared vec4 xs4[KMAX / 4u];

void mix_prologue()
{
    uint tid = gl_LocalInvocationID.x, C = pc.k, j = pc.heads & 0xffu;
    bool swap = (pc.heads & 0x100u) != 0u, wxx = (pc.heads & 0x10000u) != 0u && gl_WorkGroupID.x == 0u;
    uint si = ck_seg_slot(0u) * pc.state_stride + pc.state_off;
    float s = 0.0;
    for (uint c = tid; c < C; c += WG)
        s += xf[in_at(0u, 0u, c)];
    float mean = wg_sum(s) / float(C), q = 0.0;
    for (uint c = tid; c < C; c += WG) {
        float d = xf[in_at(0u, 0u, c)] - mean;
        q += d * d;
    }
    float inv = 1.0 / sqrt(wg_sum(q) / float(C) + pc.eps);
    for (uint c = tid; c < C; c += WG) {
        float a = (xf[in_at(0u, 0u, c)] - mean) * inv * prm[c] + prm[C + c], b = mst[si + c];
        float lo = swap ? b : a, hi = swap ? a : b;
        xs4[c >> 2][c & 3u] = lo + (hi - lo) * prm[(2u + j) * C + c];
        if (wxx)
            xxo[in_at(4u, 0u, c)] = a;
    }
    barrier();
}
#define XV(t, i) xs4[i]
#else
#define XV(t, i) x4[xb[t] + (i)]
#endif

// Elements 8 b .. 8 b + 7 of the part (row-major, so block b of row r is r * K / 8 + b): loaded as
// stored (w_raw), then as floats (w_unpack).
#ifdef W_F16
#define WRAW uvec4
WRAW w_raw(uint b) { return w4[b]; }
void w_unpack(WRAW q, out vec4 lo, out vec4 hi)
{
    lo = vec4(unpackHalf2x16(q.x), unpackHalf2x16(q.y));
    hi = vec4(unpackHalf2x16(q.z), unpackHalf2x16(q.w));
}
#else
#define WRAW mat2x4
WRAW w_raw(uint b) { return mat2x4(w4[2u * b], w4[2u * b + 1u]); }
void w_unpack(WRAW q, out vec4 lo, out vec4 hi)
{
    lo = q[0];
    hi = q[1];
}
#endif

void main()
{
    uint lane = gl_SubgroupInvocationID, sg = gl_SubgroupID, SG = gl_SubgroupSize, NS = NUM_SUBGROUPS(WG);
    uint KS = max(NS / ROWS, 1u);   // subgroups per row (uniform: powers of 2 all)
    uint kpart = sg % KS, step = UNROLL * SG * KS;
    uint K8 = pc.k >> 3, n_rb = (pc.nrows + ROWS - 1u) / ROWS;
#ifdef MIX
    mix_prologue();
#endif
    for (uint rb = gl_WorkGroupID.x; rb < n_rb; rb += gl_NumWorkGroups.x) {
        for (uint t0 = 0u; t0 < pc.rows; t0 += TOK) {
            uint xb[TOK]; // each token's x row, in vec4 (rows past the end repeat the last one)
            [[unroll]] for (uint t = 0u; t < TOK; t++)
                xb[t] = (min(t0 + t, pc.rows - 1u) * pc.in_stride[0] + pc.in_col[0]) >> 2;
            // every subgroup makes the same number of passes: the barriers below stay uniform
            for (uint r = sg / KS; r < ROWS; r += NS / KS) {
                uint row = rb * ROWS + r, wrow = min(row, pc.nrows - 1u) * K8;
                float acc[TOK];
                [[unroll]] for (uint t = 0u; t < TOK; t++)
                    acc[t] = 0.0;
                for (uint b0 = kpart * SG + lane; b0 < K8; b0 += step) {
                    WRAW raw[UNROLL]; // the round's loads first, as stored; unpacked as used
                    [[unroll]] for (uint u = 0u; u < UNROLL; u++)
                        raw[u] = w_raw(wrow + min(b0 + u * SG * KS, K8 - 1u));
                    [[unroll]] for (uint u = 0u; u < UNROLL; u++) {
                        uint b = min(b0 + u * SG * KS, K8 - 1u); // past the end: a repeat, times 0
                        float keep = b0 + u * SG * KS < K8 ? 1.0 : 0.0;
                        vec4 lo, hi;
                        w_unpack(raw[u], lo, hi);
                        [[unroll]] for (uint t = 0u; t < TOK; t++)
                            acc[t] += keep * (dot(lo, XV(t, 2u * b)) + dot(hi, XV(t, 2u * b + 1u)));
                    }
                }
                [[unroll]] for (uint t = 0u; t < TOK; t++) {
                    float s = subgroupAdd(acc[t]);
                    if (KS == 1u && lane == 0u && row < pc.nrows && t0 + t < pc.rows)
                        mm_store(row, t0 + t, s);
                    else if (KS > 1u && lane == 0u)
                        part[sg * TOK + t] = s;
                }
                if (KS > 1u) {
                    barrier();
                    if (kpart == 0u && lane < TOK && row < pc.nrows && t0 + lane < pc.rows) {
                        float s = 0.0;
                        for (uint q = 0u; q < KS; q++)
                            s += part[(sg + q) * TOK + lane];
                        mm_store(row, t0 + lane, s);
                    }
                    barrier();
                }
            }
        }
    }
}
