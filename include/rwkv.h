/*
 * rwkv.h - the public API of rwkv-c, an inference engine for RWKV v4, v5.0, v5.1/5.2, v6 and v7.
 *
 * Usage, in data-flow order:
 *
 *     struct rwkv_error err;
 *     struct rwkv_device *dev;
 *     struct rwkv_device_options dopt = rwkv_device_default_options();   // CPU, all cores
 *     if (rwkv_device_open(&dopt, &dev, &err)) { fprintf(stderr, "%s\n", err.message); ... }
 *
 *     struct rwkv_model *model;
 *     struct rwkv_model_options mopt = rwkv_model_default_options();
 *     rwkv_model_load(dev, "model.st", &mopt, &model, &err);           // .st (safetensors) or .pth
 *
 *     struct rwkv_state *state;
 *     struct rwkv_state_options sopt = rwkv_state_default_options();   // num_batch, token_chunk_size
 *     rwkv_state_new(model, &sopt, &state, &err);
 *
 *     struct rwkv_slot_io io[1] = {{ .tokens = ids, .n_tokens = n, .output = RWKV_OUTPUT_LAST,
 *                                    .logits = buf, .logits_rows = 1 }};
 *     while (io[0].n_tokens > 0)                                       // one chunk per call
 *         if (rwkv_run(state, io, 1, &err)) break;
 *     rwkv_softmax(buf, probs, rwkv_model_info(model)->n_vocab);
 *
 *     rwkv_state_free(state); rwkv_model_free(model); rwkv_device_free(dev);
 *
 * Conventions
 * - Every fallible function returns an rwkv_status; RWKV_OK (0) is success. When `err` is not NULL it
 *   receives the code and a one-line message saying what failed, where (file, tensor, argument) and why.
 *   There is no global error state; the library never exits or aborts on bad input.
 * - Objects are opaque; each `*_new`/`*_open`/`*_load` has a `*_free` that accepts NULL.
 * - Options are structs obtained from `*_default_options()`, so that new fields do not break callers.
 * - A model is immutable after loading and may be shared by many states. A state is used by one thread
 *   at a time.
 */
#ifndef RWKV_H
#define RWKV_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define RWKV_VERSION_STRING "0.1.0"

/* ---- errors ------------------------------------------------------------------------------------ */

typedef enum rwkv_status {
    RWKV_OK = 0,
    RWKV_ERR_ARG,         /* a bad argument or option given by the caller */
    RWKV_ERR_IO,          /* a file could not be opened, read or written */
    RWKV_ERR_FORMAT,      /* a file is malformed: header, offsets, dtypes, pickle, zip ... */
    RWKV_ERR_MODEL,       /* a well-formed file that is not a model we know: missing/misshapen tensors */
    RWKV_ERR_NOMEM,       /* host or device memory exhausted */
    RWKV_ERR_UNSUPPORTED, /* valid, but not implemented by this build or backend */
    RWKV_ERR_DEVICE,      /* the device failed or was lost */
    RWKV_ERR_TOKEN,       /* a token id outside the vocabulary, or bytes that cannot be decoded */
    RWKV_ERR_MISMATCH     /* a state, LoRA or file made for another model */
} rwkv_status;

struct rwkv_error {
    rwkv_status code;
    char message[512];
};

/* A constant name for a status code ("RWKV_ERR_FORMAT"). */
const char *rwkv_status_name(rwkv_status code);

/* ---- tensors ----------------------------------------------------------------------------------- */

enum rwkv_dtype {
    RWKV_DTYPE_F32 = 0,
    RWKV_DTYPE_F16,
    RWKV_DTYPE_BF16,
    RWKV_DTYPE_I8,
    RWKV_DTYPE_U8,
    RWKV_DTYPE_COUNT
};

/* "F32", "F16", "BF16", ... as safetensors spells them. */
const char *rwkv_dtype_name(enum rwkv_dtype dtype);
size_t rwkv_dtype_size(enum rwkv_dtype dtype);

/* IEEE half and bfloat16 conversions (round to nearest even). */
float rwkv_f16_to_f32(uint16_t h);
uint16_t rwkv_f32_to_f16(float f);
float rwkv_bf16_to_f32(uint16_t b);
uint16_t rwkv_f32_to_bf16(float f);

/* ---- devices ----------------------------------------------------------------------------------- */

enum rwkv_backend {
    RWKV_BACKEND_AUTO = 0, /* Vulkan when a usable device exists, else CPU */
    RWKV_BACKEND_CPU,
    RWKV_BACKEND_VULKAN
};

struct rwkv_device_options {
    enum rwkv_backend backend;
    int n_threads;           /* CPU worker threads; 0 = one per online core */
    int device_index;        /* Vulkan: physical device index; -1 = choose (env RWKV_DEVICE, then best) */
    const char *device_name; /* Vulkan: substring of the device name; NULL = any */
    int verbose;             /* 1: print one line of features in use to stderr on open */
};

struct rwkv_device_options rwkv_device_default_options(void);

struct rwkv_device;

rwkv_status rwkv_device_open(const struct rwkv_device_options *options, struct rwkv_device **out,
                             struct rwkv_error *err);
void rwkv_device_free(struct rwkv_device *device);
/* A short description: "cpu (8 threads, avx2+f16c)", "vulkan: NVIDIA H100 ...". Owned by the device. */
const char *rwkv_device_description(const struct rwkv_device *device);
enum rwkv_backend rwkv_device_backend(const struct rwkv_device *device);

/* Measures the device's copy bandwidth: `bytes` copied from one buffer in the device's memory to another
 * (host memory for the CPU, device memory for a GPU), best of several runs, as (bytes read + bytes
 * written) / second in GB/s: the yardstick benchmarks divide their bandwidth by. */
rwkv_status rwkv_device_copy_bandwidth(struct rwkv_device *device, size_t bytes, double *gbps,
                                       struct rwkv_error *err);

/* ---- models ------------------------------------------------------------------------------------ */

enum rwkv_arch {
    RWKV_ARCH_V4 = 40,
    RWKV_ARCH_V5_0 = 50, /* ln_x without gate, per-head decay, log-space bonus ("5v1" tiny model) */
    RWKV_ARCH_V5_2 = 52, /* gated v5.1 / v5.2 */
    RWKV_ARCH_V6 = 60,
    RWKV_ARCH_V7 = 70
};

/* "4", "5.0", "5.2", "6", "7". */
const char *rwkv_arch_name(enum rwkv_arch arch);

struct rwkv_model_info {
    enum rwkv_arch arch;
    int n_layer;
    int n_embd;     /* C */
    int n_head;     /* H (v4: 1) */
    int head_size;  /* N (v4: C) */
    int n_ffn;      /* F */
    int n_vocab;    /* V */
    int dim_mix;    /* v6 time_mix LoRA rank, v7: w LoRA rank; 0 if none */
    int dim_decay;  /* v6 time_decay LoRA rank, v7: a LoRA rank */
    int dim_value;  /* v7: v LoRA rank */
    int dim_gate;   /* v7: g LoRA rank */
    int64_t n_params;        /* every weight element, embedding and head included */
    int64_t n_params_layers; /* the per-token matmul parameters: blocks only (no embedding, no head) */
    int64_t weight_bytes;    /* bytes of all weights as held in memory */
    int64_t head_bytes;      /* bytes of head.weight (read once per logits row batch) */
    size_t state_floats;     /* floats of recurrent state per slot (see rwkv_state_read) */
    enum rwkv_dtype matrix_dtype; /* dtype of the large matrices as held */
};

struct rwkv_lora_spec {
    const char *path;    /* .st or .pth LoRA file */
    float alpha;         /* merged as W += (alpha / rank) * B A */
    const char *pattern; /* NULL or a regex-like glob of tensor names the LoRA may touch ("blocks.[0-5].att.*") */
};

struct rwkv_model_options {
    const struct rwkv_lora_spec *loras; /* merged in order at load time */
    int n_loras;
    enum rwkv_dtype matrix_dtype; /* held precision of the large matrices: F16 (default), F32 or BF16
                                     (when converting); RWKV_DTYPE_COUNT = keep what the file has */
};

struct rwkv_model_options rwkv_model_default_options(void);

struct rwkv_model;

/* Loads a model file (.st safetensors, web-rwkv layout or the engine's own saved format; or a PyTorch
 * .pth checkpoint) onto `device`. The file may be closed/unmapped by the time this returns; the model
 * owns what it keeps. The device must outlive the model. */
rwkv_status rwkv_model_load(struct rwkv_device *device, const char *path,
                            const struct rwkv_model_options *options, struct rwkv_model **out,
                            struct rwkv_error *err);
void rwkv_model_free(struct rwkv_model *model);
const struct rwkv_model_info *rwkv_model_get_info(const struct rwkv_model *model);

/* Writes the loaded model (LoRAs merged) as safetensors with rwkv-c metadata; written to a temporary
 * file and renamed, so `path` is either the complete new file or untouched. */
rwkv_status rwkv_model_save(const struct rwkv_model *model, const char *path, struct rwkv_error *err);

/* ---- state ------------------------------------------------------------------------------------- */

struct rwkv_state_options {
    int num_batch;        /* slots (independent sequences); >= 1 */
    int token_chunk_size; /* most tokens one rwkv_run processes over all slots; >= 1 */
};

struct rwkv_state_options rwkv_state_default_options(void);

struct rwkv_state;

rwkv_status rwkv_state_new(const struct rwkv_model *model, const struct rwkv_state_options *options,
                           struct rwkv_state **out, struct rwkv_error *err);
void rwkv_state_free(struct rwkv_state *state);
int rwkv_state_num_batch(const struct rwkv_state *state);

/* Slot -1 means every slot. */
rwkv_status rwkv_state_reset(struct rwkv_state *state, int slot, struct rwkv_error *err);

/* One slot's state as float32, `rwkv_model_info.state_floats` values. Layout per layer, layers in order:
 *   v4:     att_shift[C], aa[C], bb[C], pp[C], ffn_shift[C]
 *   v5-v7:  att_shift[C], S[H][N][N], ffn_shift[C]
 * where att_shift/ffn_shift are the previous token's ln1/ln2 outputs and S is the WKV matrix state:
 * v5/v6 S[h][key][value], v7 S[h][value][key] (the index order of the update formulas). */
rwkv_status rwkv_state_read(const struct rwkv_state *state, int slot, float *dst, size_t n_floats,
                            struct rwkv_error *err);
rwkv_status rwkv_state_write(struct rwkv_state *state, int slot, const float *src, size_t n_floats,
                             struct rwkv_error *err);
rwkv_status rwkv_state_copy(struct rwkv_state *state, int src_slot, int dst_slot, struct rwkv_error *err);

/* Where a state's rwkv_run calls spent their time, since it was created: `run_seconds` inside rwkv_run,
 * of which `wait_seconds` waiting for the device (GPU backends; 0 on the CPU, where all of it is work).
 * run_seconds - wait_seconds is the host's own cost (planning, uploads, submission, copying logits). */
struct rwkv_run_stats {
    uint64_t runs;          /* rwkv_run calls that ran a chunk */
    double run_seconds;
    double wait_seconds;
    uint64_t single_dispatch_runs; /* of the runs, those done as one GPU dispatch (Vulkan, v7, one token
                                    * of one sequence: RWKV_VK_PERSISTENT in the README) */
};
rwkv_status rwkv_state_run_stats(const struct rwkv_state *state, struct rwkv_run_stats *out, struct rwkv_error *err);

/* Logits memory owned by the state: `*rows` rows of n_vocab floats (the token chunk size), valid until
 * the state is freed. Row r receives the r-th logits row of each rwkv_run call (slots in io order, each
 * slot's rows in order): pointing io[i].logits there (for one row per slot: area + i * n_vocab) lets a
 * GPU backend hand over its readback buffer instead of copying it (at batch 256 and 65536 tokens that
 * is 64 MB per step). Any other io.logits works as always. The next rwkv_run overwrites the area. */
rwkv_status rwkv_state_logits_area(struct rwkv_state *state, float **area, size_t *rows, struct rwkv_error *err);

/* State files (safetensors, metadata rwkv.state_format = 1 with model version and dimensions). */
rwkv_status rwkv_state_save(const struct rwkv_state *state, int slot, const char *path,
                            struct rwkv_error *err);
rwkv_status rwkv_state_load(struct rwkv_state *state, int slot, const char *path, struct rwkv_error *err);
/* An initial-state ("time_state") file from state tuning: blocks.L.att.time_state [H][key][value]. The
 * token-shift parts of the slot become zero. v5, v6, v7. */
rwkv_status rwkv_state_load_time_state(struct rwkv_state *state, int slot, const char *path,
                                       struct rwkv_error *err);

/* ---- running ----------------------------------------------------------------------------------- */

enum rwkv_output {
    RWKV_OUTPUT_NONE = 0, /* consume tokens, produce no logits */
    RWKV_OUTPUT_LAST,     /* one row, after the last token of this slot's input */
    RWKV_OUTPUT_ALL       /* one row per input token */
};

/* Per-slot input and output of rwkv_run. rwkv_run advances `tokens`, `n_tokens` and `logits` past what
 * it consumed and wrote, so a caller loops `while (any n_tokens > 0) rwkv_run(...)` with the same array. */
struct rwkv_slot_io {
    const int32_t *tokens; /* in: not yet consumed tokens of this slot (may be NULL when n_tokens is 0) */
    size_t n_tokens;
    enum rwkv_output output;
    float *logits;         /* in: where the next rows go (n_vocab floats each); may be NULL for NONE */
    size_t logits_rows;    /* in: rows still available at `logits`; checked before anything runs */
    size_t consumed;       /* out: tokens consumed by this call */
    size_t rows_written;   /* out: logits rows written by this call */
    int probabilities;     /* in: 1 = the rows are softmax probabilities (computed by the backend,
                              on the GPU for GPU devices) instead of logits */
};

/* Runs up to token_chunk_size tokens of the slots with input (slot i = io[i], n_io <= num_batch; slots
 * beyond n_io and slots without tokens are untouched). Tokens are shared fairly among slots: each slot
 * with input gets an equal share and unused shares go to slots with more input. */
rwkv_status rwkv_run(struct rwkv_state *state, struct rwkv_slot_io *io, int n_io, struct rwkv_error *err);

/* probs[i] = exp(logits[i] - max) / sum, computed in double for the sum. In place allowed. */
void rwkv_softmax(const float *logits, float *probs, size_t n);

/* ---- hooks ------------------------------------------------------------------------------------- */

/* What a hook sees: one intermediate tensor of the running chunk at a named point of the layer program.
 * Points (per layer unless noted): att.in att.ln att.mix att.key att.value att.receptance att.gate
 * att.decay att.iclr att.wkv att.out ffn.in ffn.ln ffn.mix ffn.key ffn.receptance ffn.value ffn.out,
 * and the global embed, embed.ln, head.in, head.ln, head.out (logits). rwkv_model_hook_points lists the
 * ones a model has. */
struct rwkv_hook_data {
    const char *point;        /* e.g. "att.out" */
    int layer;                /* -1 for global points */
    float *data;              /* rows x width float32, row r at data + r * stride; changes are kept */
    size_t rows, width, stride;
    const int32_t *row_slot;  /* the state slot of each row */
    struct rwkv_state *state; /* the running state; rwkv_state_read/write may be called from a hook */
};

/* Returns 0 to go on; anything else stops the run, which then returns RWKV_ERR_ARG ("stopped by a hook");
 * the slots of that chunk are then part-way through it: reset or reload them. */
typedef int (*rwkv_hook_fn)(void *user, const struct rwkv_hook_data *data);

/* Calls `fn` at every point named `point` ("*" = all) of layer `layer` (-1 = every layer and the
 * global points). Hooks run in the order added. Backends without hook support return
 * RWKV_ERR_UNSUPPORTED. On Vulkan a chunk with matching hooks runs in pieces (slower), per-output
 * points are called once per tile of logits rows, and a run in which a hook changes a point that the
 * backend computes in one kernel with the ops after it (att.ln, ffn.ln) fails with RWKV_ERR_UNSUPPORTED. */
rwkv_status rwkv_state_add_hook(struct rwkv_state *state, const char *point, int layer, rwkv_hook_fn fn,
                                void *user, struct rwkv_error *err);
void rwkv_state_clear_hooks(struct rwkv_state *state);

/* Writes up to `cap` (name, layer) pairs of the model's hook points in program order; returns how many
 * there are. Names are static strings. */
size_t rwkv_model_hook_points(const struct rwkv_model *model, const char **names, int *layers, size_t cap);

/* ---- tokenizer (RWKV World: greedy longest byte match) ---------------------------------------- */

struct rwkv_tokenizer;

/* Reads rwkv_vocab_v20230424.txt style files or web-rwkv's JSON vocabulary. */
rwkv_status rwkv_tokenizer_load(const char *path, struct rwkv_tokenizer **out, struct rwkv_error *err);
/* A byte-level tokenizer (id = byte value, 256 tokens), for the tiny models. */
rwkv_status rwkv_tokenizer_new_bytes(struct rwkv_tokenizer **out, struct rwkv_error *err);
void rwkv_tokenizer_free(struct rwkv_tokenizer *tok);
size_t rwkv_tokenizer_vocab_size(const struct rwkv_tokenizer *tok); /* highest id + 1 */

/* Encodes any bytes. `*ids` is malloc'ed and owned by the caller (free()). */
rwkv_status rwkv_tokenizer_encode(const struct rwkv_tokenizer *tok, const uint8_t *bytes, size_t n,
                                  int32_t **ids, size_t *n_ids, struct rwkv_error *err);
/* Decodes ids to bytes. `*bytes` is malloc'ed (NUL-terminated for convenience, not counted in n_bytes). */
rwkv_status rwkv_tokenizer_decode(const struct rwkv_tokenizer *tok, const int32_t *ids, size_t n_ids,
                                  uint8_t **bytes, size_t *n_bytes, struct rwkv_error *err);
/* The bytes of one token, owned by the tokenizer; NULL for an unknown id. */
const uint8_t *rwkv_tokenizer_token(const struct rwkv_tokenizer *tok, int32_t id, size_t *len);

/* ---- sampler ----------------------------------------------------------------------------------- */

struct rwkv_sampler_options {
    float temperature;        /* 0 = greedy (argmax) */
    float top_p;              /* 1 = off */
    int top_k;                /* 0 = off */
    float min_p;              /* 0 = off */
    float repetition_penalty; /* 1 = off; divides positive / multiplies negative logits of seen tokens */
    float presence_penalty;   /* 0 = off; subtracted once from a seen token */
    float frequency_penalty;  /* 0 = off; subtracted per (decayed) occurrence */
    float penalty_decay;      /* occurrence counts are multiplied by this after each token (1 = none) */
    uint64_t seed;            /* the same seed and inputs give the same tokens */
};

struct rwkv_sampler_options rwkv_sampler_default_options(void);

struct rwkv_sampler;

rwkv_status rwkv_sampler_new(const struct rwkv_sampler_options *options, size_t n_vocab,
                             struct rwkv_sampler **out, struct rwkv_error *err);
void rwkv_sampler_free(struct rwkv_sampler *sampler);
/* Picks a token from `logits` (n_vocab values, not modified). */
int32_t rwkv_sampler_sample(struct rwkv_sampler *sampler, const float *logits);
/* Records a token for the penalties (call for every prompt and generated token you want penalised). */
void rwkv_sampler_accept(struct rwkv_sampler *sampler, int32_t token);
void rwkv_sampler_reset(struct rwkv_sampler *sampler);

#ifdef __cplusplus
}
#endif

#endif /* RWKV_H */
