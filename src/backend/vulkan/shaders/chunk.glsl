// The chunk table (uint words, written by vk_exec.c): a header of offsets, then the tokens.
// Define CHUNK_BINDING before including.
layout(std430, binding = CHUNK_BINDING) readonly buffer ChunkBuf { uint ck[]; };

uint ck_token(uint t) { return ck[8u + t]; }
uint ck_tok_seg(uint t) { return ck[ck[0] + t]; }   // segment of each token
uint ck_seg_slot(uint s) { return ck[ck[1] + s]; }
uint ck_seg_start(uint s) { return ck[ck[2] + s]; }
uint ck_seg_len(uint s) { return ck[ck[3] + s]; }
uint ck_out_row(uint r) { return ck[ck[4] + r]; }   // token of each logits row
