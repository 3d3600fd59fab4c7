// A weight matrix part at binding W_BINDING: F16 (with W_F16) as packed uint pairs, which needs no
// 16-bit storage feature, or F32. Element i of the part; w_pair(i) needs i even.
#ifdef W_F16
layout(std430, binding = W_BINDING) readonly buffer WBuf { uint wq[]; };
float w_at(uint i) { return unpackHalf2x16(wq[i >> 1])[i & 1u]; }
vec2 w_pair(uint i) { return unpackHalf2x16(wq[i >> 1]); }
#else
layout(std430, binding = W_BINDING) readonly buffer WBuf { float wf[]; };
float w_at(uint i) { return wf[i]; }
vec2 w_pair(uint i) { return vec2(wf[i], wf[i + 1u]); }
#endif
