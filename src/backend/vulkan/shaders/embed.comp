#version 450
// EMBED: out[t] = emb[tokens[t]], for the tokens whose row lies in this weight part.
#extension GL_GOOGLE_include_directive : require

layout(constant_id = 0) const uint WG = 64;
layout(local_size_x_id = 0) in;

#include "common.glsl"
layout(std430, binding = 0) writeonly buffer OutBuf { float y[]; };
#define W_BINDING 1
#include "weights.glsl"
#define CHUNK_BINDING 2
#include "chunk.glsl"

void main()
{
    for (uint t = gl_WorkGroupID.y; t < pc.rows; t += gl_NumWorkGroups.y) {
        uint tok = ck_token(t);
        if (tok < pc.row0 || tok >= pc.row0 + pc.nrows)
            continue;
        uint base = (tok - pc.row0) * pc.width;
        for (uint c = gl_GlobalInvocationID.x; c < pc.width; c += gl_NumWorkGroups.x * WG)
            y[out_at(t, c)] = w_at(base + c);
    }
}
