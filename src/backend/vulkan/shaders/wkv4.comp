#version 450
// WKV4: one invocation per (segment, channel) runs the segment's tokens in order (cpu_wkv4_seg).
// in0 k, in1 v, in2 r (already sigmoid); w0 decay (-exp), w1 bonus; state aa, bb, pp (3 x width).
#extension GL_GOOGLE_include_directive : require

layout(constant_id = 0) const uint WG = 64;
layout(local_size_x_id = 0) in;

#include "common.glsl"
layout(std430, binding = 0) writeonly buffer OutBuf { float y[]; };
layout(std430, binding = 1) readonly buffer KBuf { float kb[]; };
layout(std430, binding = 2) readonly buffer VBuf { float vb[]; };
layout(std430, binding = 3) readonly buffer RBuf { float rb[]; };
layout(std430, binding = 4) readonly buffer DecayBuf { float decay[]; };
layout(std430, binding = 5) readonly buffer FirstBuf { float first[]; };
layout(std430, binding = 6) buffer StateBuf { float st[]; };
#define CHUNK_BINDING 7
#include "chunk.glsl"

void main()
{
    uint C = pc.width;
    for (uint s = gl_WorkGroupID.y; s < pc.n_seg; s += gl_NumWorkGroups.y) {
        uint start = ck_seg_start(s), end = start + ck_seg_len(s);
        uint base = ck_seg_slot(s) * pc.state_stride + pc.state_off;
        for (uint c = gl_GlobalInvocationID.x; c < C; c += gl_NumWorkGroups.x * WG) {
            float aa = st[base + c], bb = st[base + C + c], pp = st[base + 2u * C + c];
            float u = first[c], w = decay[c];
            for (uint t = start; t < end; t++) {
                float k = kb[in_at(0u, t, c)], v = vb[in_at(1u, t, c)], r = rb[in_at(2u, t, c)];
                float ww = u + k;
                float q = max(pp, ww);
                float e1 = exp(pp - q), e2 = exp(ww - q);
                float wkv = (e1 * aa + e2 * v) / (e1 * bb + e2);
                ww = pp + w;
                q = max(ww, k);
                e1 = exp(ww - q);
                e2 = exp(k - q);
                aa = e1 * aa + e2 * v;
                bb = e1 * bb + e2;
                pp = q;
                y[out_at(t, c)] = r * wkv;
            }
            st[base + c] = aa;
            st[base + C + c] = bb;
            st[base + 2u * C + c] = pp;
        }
    }
}
