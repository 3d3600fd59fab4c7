/* One device and one model shared by states on several threads: each thread's logits equal a
 * single-threaded run's (the model is immutable; the device's thread pool runs one job at a time). */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "util/cases.h"

enum { N_THREADS = 4, N_TOKENS = 96 };

struct job {
    struct rwkv_model *model;
    int32_t tokens[N_TOKENS];
    float *logits;
    rwkv_status st;
};

static void *worker(void *p)
{
    struct job *j = p;
    struct rwkv_error err;
    j->st = tc_run(j->model, j->tokens, N_TOKENS, 5, NULL, j->logits, &err);
    return NULL;
}

int main(void)
{
    struct rwkv_device *dev = tc_cpu_device(0);
    struct rwkv_model *m;
    struct rwkv_error err;
    if (rwkv_model_load(dev, tu_shared("models/tiny-rwkv-7v0-834K.st"), NULL, &m, &err)) {
        fprintf(stderr, "%s\n", err.message);
        return 1;
    }
    struct job jobs[N_THREADS];
    pthread_t th[N_THREADS];
    for (int k = 0; k < N_THREADS; k++) {
        jobs[k].model = m;
        for (int i = 0; i < N_TOKENS; i++)
            jobs[k].tokens[i] = (i * 31 + k * 7) % 256;
        jobs[k].logits = malloc(N_TOKENS * 256 * sizeof(float));
        CHECK(pthread_create(&th[k], NULL, worker, &jobs[k]) == 0);
    }
    for (int k = 0; k < N_THREADS; k++)
        pthread_join(th[k], NULL);
    float *alone = malloc(N_TOKENS * 256 * sizeof(float));
    for (int k = 0; k < N_THREADS; k++) {
        CHECK(jobs[k].st == RWKV_OK);
        CHECK(tc_run(m, jobs[k].tokens, N_TOKENS, 5, NULL, alone, &err) == RWKV_OK);
        CHECK_MSG(memcmp(alone, jobs[k].logits, N_TOKENS * 256 * sizeof(float)) == 0, "thread %d differs", k);
        free(jobs[k].logits);
    }
    free(alone);
    rwkv_model_free(m);
    rwkv_device_free(dev);
    return tu_finish("test_threads");
}
