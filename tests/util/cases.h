/* Running the ground-truth case files of ../shared/cases on any backend. */
#ifndef RWKV_TEST_CASES_H
#define RWKV_TEST_CASES_H

#include "rwkv.h"
#include "util/testutil.h"

/* Runs `tokens` from the zero state (or a time_state file) with every-token output and `chunk`
 * tokens per run; fills logits [n][n_vocab]. Returns RWKV_OK or the failing status. */
rwkv_status tc_run(struct rwkv_model *m, const int32_t *tokens, size_t n, int chunk, const char *time_state,
                   float *logits, struct rwkv_error *err);

/* Opens the CPU backend (n_threads 0 = all cores); exits the test with a message if it cannot. */
struct rwkv_device *tc_cpu_device(int n_threads);

/* Loads `path` with `mo` (NULL = defaults) and runs `tokens` as tc_run does; returns malloc'ed logits
 * [n][n_vocab], or NULL after printing why. */
float *tc_load_and_run(struct rwkv_device *dev, const char *path, const struct rwkv_model_options *mo,
                       const int32_t *tokens, size_t n, int chunk);

/* Max |a - b| over n values (NaN counts as infinite). */
double tc_max_diff(const float *a, const float *b, size_t n);

/* Flattens a JSON array of rows of floats; returns NULL if absent. */
float *tc_rows(const struct json *rows, size_t *n_rows, size_t *width);

/* Runs every case file of the shared folder (plain, LoRA, state) on `dev` for both weight files and
 * checks every position against the column of the weights loaded at `tol`. Returns failures. */
int tc_run_all_cases(struct rwkv_device *dev, double tol, const char *label);

#endif
