// The chunk table (uint words, written by vk_exec.c): a header of offsets, then the tokens, each
// token's segment, then per segment its slot, first token and length, then the logits rows' tokens.
// The offsets follow from the chunk's token and segment counts (pc.chunk_tokens, pc.n_seg), so that
// reading an entry costs one load, not two. Define CHUNK_BINDING before including (after common.glsl).
layout(std430, binding = CHUNK_BINDING) readonly buffer ChunkBuf { uint ck[]; };

uint ck_token(uint t) { return ck[8u + t]; }
uint ck_tok_seg(uint t) { return ck[8u + pc.chunk_tokens + t]; }   // segment of each token
uint ck_seg_slot(uint s) { return ck[8u + 2u * pc.chunk_tokens + s]; }
uint ck_seg_start(uint s) { return ck[8u + 2u * pc.chunk_tokens + pc.n_seg + s]; }
uint ck_seg_len(uint s) { return ck[8u + 2u * pc.chunk_tokens + 2u * pc.n_seg + s]; }
uint ck_out_row(uint r) { return ck[8u + 2u * pc.chunk_tokens + 3u * pc.n_seg + r]; } // token of each logits row
// Whether every segment of the chunk is one token (generation): then token t is segment t.
bool ck_one_token() { return pc.chunk_tokens == pc.n_seg; }
