#version 450
// MATMUL for many tokens on tensor cores (VK_NV_cooperative_matrix: 16x16x16 F16 products, F32 sums):
// y[t][row0 + o] (+)= act(W[o] . x[t] + bias). A workgroup of WM x WN warps computes TM tokens x TN
// rows; K advances TK at a time through shared memory while the next slice loads into registers
// (vk_pipeline.c's tiles, measured with bench/vk_gemm.c; slower there: a second register stage (more
// registers), two shared-memory stages, W fragments loaded straight from memory).
// x is fp32. With SPLIT it is staged as two F16 parts, hi = x with its mantissa cut to F16's 10 bits
// (by masking: compilers fold a float -> half -> float round trip into nothing) and lo = f16(x - hi),
// and both are multiplied: the F16 weights are exact, so each product keeps about 21 bits of x and the
// result is close to the fp32 kernels'. Without, x is rounded to F16 (about 1e-3 relative error). A tile whose x
// leaves the F16 range is recomputed in fp32 (slow, correct). Needs F16 weights, K % 8 == 0 and x rows
// on 16-byte boundaries (vk_backend.c checks), and subgroups of 32.
#extension GL_GOOGLE_include_directive : require
#extension GL_KHR_shader_subgroup_basic : require
#extension GL_KHR_memory_scope_semantics : require
#extension GL_NV_cooperative_matrix : require
#extension GL_EXT_shader_explicit_arithmetic_types_float16 : require
#extension GL_EXT_control_flow_attributes : require

layout(constant_id = 0) const uint WG = 256; // 32 * WM * WN
layout(constant_id = 1) const uint TM = 128; // tokens per tile
layout(constant_id = 2) const uint TN = 128; // rows per tile
layout(constant_id = 3) const uint WM = 2;   // warps along the tokens
layout(constant_id = 4) const uint WN = 4;   // warps along the rows
layout(constant_id = 5) const uint MODE = 1;  // bit 0: SPLIT; bit 1: every tile takes the fp32 path (tests);
                                             // bit 3: may be split along K (else that code is left out)
layout(constant_id = 6) const uint TK = 32;   // K per shared-memory slice (a multiple of 16)
const uint SPLIT = MODE & 1u;
layout(local_size_x_id = 0) in;

#include "common.glsl"
layout(std430, binding = 0) buffer OutBuf { float y[]; };
layout(std430, binding = 1) readonly buffer InBuf { vec4 x4[]; };
layout(std430, binding = 2) readonly buffer WBuf { uvec4 w4[]; }; // 8 F16 per uvec4
layout(std430, binding = 3) readonly buffer BiasBuf { float bias[]; };
#include "matmul_out.glsl"
// Split along K (vk_exec.c): pc.state_stride parts (0 or 1: none), this workgroup's part in z; raw
// sums go to the scratch, [part][token][row of the part], for ksum.comp.
layout(std430, binding = 7) writeonly buffer ScratchBuf { float part_sum[]; };
const bool KSPLIT_ON = (MODE & 8u) != 0u;
uint n_parts() { return KSPLIT_ON ? max(pc.state_stride, 1u) : 1u; }

#define MAT16 fcoopmatNV<16, gl_ScopeSubgroup, 16, 16>
#define MAT32 fcoopmatNV<32, gl_ScopeSubgroup, 16, 16>

const uint LD4 = (TK + 8u) / 8u;     // a staged row: TK halfs + 8 of padding (banks), in uvec4
const uint CM = TM / WM / 16u;       // accumulators per warp along the tokens
const uint CN = TN / WN / 16u;       // and along the rows
const uint A_HI = 0u, A_LO = TM * LD4, B_W = A_LO + (SPLIT != 0u ? TM * LD4 : 0u);
const uint UNITS = TK / 8u;          // uvec4 units per staged row
const uint AU = TM * UNITS / WG;     // units per invocation and slice
const uint BU = TN * UNITS / WG;
const uint CLD = 20u;                // epilogue staging row: 16 floats + 4 of padding
const uint STAGE = B_W + TN * LD4;    // one slice's tiles
const uint EPI = WG / 32u * 16u * CLD / 4u;
// the slice, then (reused) each warp's 16 x 16 epilogue staging
shared uvec4 sh[STAGE > EPI ? STAGE : EPI];
shared uint bad;                     // this tile's x leaves the F16 range

vec4 xa[AU][2];                      // the next slice in registers
uvec4 wb[BU];

void load_slice(uint k0, uint t0, uint r0)
{
    uint tid = gl_LocalInvocationID.x, K8 = pc.k >> 3;
    [[unroll]] for (uint u = 0u; u < AU; u++) {
        uint e = tid + u * WG, r = e / UNITS, kb = k0 / 8u + e % UNITS, t = t0 + r;
        bool in_range = t < pc.rows && kb < K8;
        uint base = ((t * pc.in_stride[0] + pc.in_col[0]) >> 2) + 2u * kb;
        xa[u][0] = in_range ? x4[base] : vec4(0.0);
        xa[u][1] = in_range ? x4[base + 1u] : vec4(0.0);
    }
    [[unroll]] for (uint u = 0u; u < BU; u++) {
        uint e = tid + u * WG, row = r0 + e / UNITS, kb = k0 / 8u + e % UNITS;
        wb[u] = row < pc.nrows && kb < K8 ? w4[row * K8 + kb] : uvec4(0u);
    }
}

uvec2 pack4(f16vec4 h)
{
    return uvec2(packFloat2x16(h.xy), packFloat2x16(h.zw));
}

void store_slice(uint s0)
{
    uint tid = gl_LocalInvocationID.x;
    [[unroll]] for (uint u = 0u; u < AU; u++) {
        uint e = tid + u * WG, at = (e / UNITS) * LD4 + e % UNITS;
        vec4 v0 = xa[u][0], v1 = xa[u][1];
        if (max(max(abs(v0.x), abs(v0.y)), max(abs(v0.z), abs(v0.w))) > 65504.0 ||
            max(max(abs(v1.x), abs(v1.y)), max(abs(v1.z), abs(v1.w))) > 65504.0)
            bad = 1u;
        if (SPLIT != 0u) {
            // x - hi is exact in fp32; its rounding to F16 costs 11 more bits below hi's
            vec4 h0 = uintBitsToFloat(floatBitsToUint(v0) & 0xffffe000u);
            vec4 h1 = uintBitsToFloat(floatBitsToUint(v1) & 0xffffe000u);
            sh[s0 + A_LO + at] = uvec4(pack4(f16vec4(v0 - h0)), pack4(f16vec4(v1 - h1)));
            v0 = h0;
            v1 = h1;
        }
        sh[s0 + A_HI + at] = uvec4(pack4(f16vec4(v0)), pack4(f16vec4(v1)));
    }
    [[unroll]] for (uint u = 0u; u < BU; u++) {
        uint e = tid + u * WG;
        sh[s0 + B_W + (e / UNITS) * LD4 + e % UNITS] = wb[u];
    }
}

// The fp32 fallback for one element, over K blocks [b0, b1).
float dot_f32(uint row, uint t, uint b0, uint b1)
{
    uint K8 = pc.k >> 3, xb = (t * pc.in_stride[0] + pc.in_col[0]) >> 2;
    float s = 0.0;
    for (uint b = b0; b < b1; b++) {
        uvec4 q = w4[row * K8 + b];
        s += dot(vec4(unpackHalf2x16(q.x), unpackHalf2x16(q.y)), x4[xb + 2u * b]) +
             dot(vec4(unpackHalf2x16(q.z), unpackHalf2x16(q.w)), x4[xb + 2u * b + 1u]);
    }
    return s;
}

void main()
{
    uint tid = gl_LocalInvocationID.x, warp = gl_SubgroupID, lane = gl_SubgroupInvocationID;
    uint wm = warp / WN, wn = warp % WN;
    uint n_rb = (pc.nrows + TN - 1u) / TN, n_tb = (pc.rows + TM - 1u) / TM;
    // this part's K: whole slices, the last part takes the rest
    uint P = n_parts(), z = KSPLIT_ON ? gl_WorkGroupID.z : 0u, kps = (pc.k + P * TK - 1u) / (P * TK) * TK;
    uint k_lo = KSPLIT_ON ? min(z * kps, pc.k) : 0u, k_hi = KSPLIT_ON && P > 1u ? min(k_lo + kps, pc.k) : pc.k;
    // the split's raw sum of element (t, row), or the epilogue
#define STORE_OUT(row, t, v) \
    if (KSPLIT_ON && P > 1u) \
        part_sum[(z * pc.rows + (t)) * pc.nrows + (row)] = (v); \
    else \
        mm_store(row, t, v)
    // token tiles along x: the workgroups running together share a weight tile, read from memory once
    for (uint rb = gl_WorkGroupID.y; rb < n_rb; rb += gl_NumWorkGroups.y) {
        for (uint tb = gl_WorkGroupID.x; tb < n_tb; tb += gl_NumWorkGroups.x) {
            uint t0 = tb * TM, r0 = rb * TN;
            MAT32 acc[CM][CN];
            [[unroll]] for (uint i = 0u; i < CM; i++)
                [[unroll]] for (uint j = 0u; j < CN; j++)
                    acc[i][j] = MAT32(0.0);
            if (tid == 0u)
                bad = 0u;
            load_slice(k_lo, t0, r0);
            for (uint k0 = k_lo; k0 < k_hi; k0 += TK) {
                barrier(); // the previous slice is consumed
                store_slice(0u);
                barrier();
                if (k0 + TK < k_hi)
                    load_slice(k0 + TK, t0, r0);
                uint s0 = 0u;
                [[unroll]] for (uint k = 0u; k < TK / 16u; k++) {
                    MAT16 a[CM], al[CM], b;
                    [[unroll]] for (uint i = 0u; i < CM; i++) {
                        uint at = s0 + (wm * CM + i) * 16u * LD4 + 2u * k;
                        coopMatLoadNV(a[i], sh, A_HI + at, LD4, false);
                        if (SPLIT != 0u)
                            coopMatLoadNV(al[i], sh, A_LO + at, LD4, false);
                    }
                    [[unroll]] for (uint j = 0u; j < CN; j++) {
                        // W rows are the columns of B: element (k, n) at n * LD + k
                        coopMatLoadNV(b, sh, s0 + B_W + (wn * CN + j) * 16u * LD4 + 2u * k, LD4, true);
                        [[unroll]] for (uint i = 0u; i < CM; i++) {
                            acc[i][j] = coopMatMulAddNV(a[i], b, acc[i][j]);
                            if (SPLIT != 0u)
                                acc[i][j] = coopMatMulAddNV(al[i], b, acc[i][j]);
                        }
                    }
                }
            }
            barrier(); // the slices are consumed: the space stages the epilogue
            bool fallback = bad != 0u || (MODE & 2u) != 0u;
            if (fallback) {
                for (uint e = tid; e < TM * TN; e += WG) {
                    uint t = t0 + e / TN, row = r0 + e % TN;
                    if (t < pc.rows && row < pc.nrows) {
                        float v = dot_f32(row, t, k_lo >> 3, (k_hi + 7u) >> 3);
                        STORE_OUT(row, t, v);
                    }
                }
            } else {
                uint base = warp * 16u * CLD / 4u;
                [[unroll]] for (uint i = 0u; i < CM; i++) {
                    [[unroll]] for (uint j = 0u; j < CN; j++) {
                        coopMatStoreNV(acc[i][j], sh, base, CLD / 4u, false);
                        subgroupMemoryBarrierShared();
                        subgroupBarrier();
                        [[unroll]] for (uint q = 0u; q < 8u; q++) {
                            uint e = lane + 32u * q, rr = e / 16u, cc = e % 16u;
                            uint t = t0 + (wm * CM + i) * 16u + rr, row = r0 + (wn * CN + j) * 16u + cc;
                            float v = uintBitsToFloat(sh[base + (rr * CLD + cc) / 4u][cc % 4u]);
                            if (t < pc.rows && row < pc.nrows) {
                                STORE_OUT(row, t, v);
                            }
                        }
                        subgroupBarrier();
                    }
                }
            }
            barrier(); // `bad` and the staging are read before the next tile
        }
    }
}
