// The MATMUL epilogue shared by matmul, gemv, gemm and gemm_cm: y[tok][row0 + row] (+)= act(v + bias),
// then, with VK_FLAG_LERP_OUT, the LERP that the program runs next on this output (its dyn input):
// out2 = a + (b - a) * y, views a, b, out2 in in[1], in[2], in[3] (vk_backend.c checks the pattern).
// Needs common.glsl and the y (binding 0) and bias (binding 3) buffers declared before including.
layout(std430, binding = 4) readonly buffer LerpA { float lerp_a[]; };
layout(std430, binding = 5) readonly buffer LerpB { float lerp_b[]; };
layout(std430, binding = 6) buffer LerpOut { float lerp_out[]; }; // may alias lerp_a (in place)

void mm_store(uint row, uint tok, float v)
{
    if (has_w(1u))
        v += bias[pc.row0 + row];
    v = act_apply(pc.act, v);
    uint c = pc.row0 + row, o = out_at(tok, c);
    y[o] = accumulate() ? y[o] + v : v;
    if ((pc.flags & (1u << 17)) != 0u) {
        float a = lerp_a[in_at(1u, tok, c)];
        lerp_out[in_at(3u, tok, c)] = a + (lerp_b[in_at(2u, tok, c)] - a) * v;
    }
}
