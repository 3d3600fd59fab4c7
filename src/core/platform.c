#define _POSIX_C_SOURCE 200809L
#include "core/platform.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/error.h"

#if defined(__unix__) || defined(__APPLE__)
#define RWKV_HAVE_POSIX 1
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#if !defined(__EMSCRIPTEN__) && !defined(RWKV_NO_MMAP)
#include <sys/mman.h>
#define RWKV_HAVE_MMAP 1
#endif
#endif

#if defined(RWKV_HAVE_POSIX) && !defined(RWKV_NO_THREADS) && (!defined(__EMSCRIPTEN__) || defined(__EMSCRIPTEN_PTHREADS__))
#include <pthread.h>
#define RWKV_HAVE_THREADS 1
#endif

/* ---- files ---- */

static rwkv_status read_whole_file(const char *path, struct rwkv_file_map *map, struct rwkv_error *err)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return rwkv_fail(err, RWKV_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    size_t cap = 1 << 16, len = 0;
    uint8_t *buf = malloc(cap);
    if (!buf) {
        fclose(f);
        return rwkv_fail(err, RWKV_ERR_NOMEM, "%s: out of memory reading the file", path);
    }
    for (;;) {
        size_t got = fread(buf + len, 1, cap - len, f);
        len += got;
        if (got == 0)
            break;
        if (len == cap) {
            uint8_t *nb = cap <= (size_t)-1 / 2 ? realloc(buf, cap * 2) : NULL;
            if (!nb) {
                free(buf);
                fclose(f);
                return rwkv_fail(err, RWKV_ERR_NOMEM, "%s: out of memory reading the file", path);
            }
            buf = nb;
            cap *= 2;
        }
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        free(buf);
        return rwkv_fail(err, RWKV_ERR_IO, "%s: read error", path);
    }
    map->data = buf;
    map->size = len;
    map->mapped = 0;
    return RWKV_OK;
}

rwkv_status rwkv_map_file(const char *path, struct rwkv_file_map *map, struct rwkv_error *err)
{
    memset(map, 0, sizeof *map);
    if (!path)
        return rwkv_fail(err, RWKV_ERR_ARG, "no file path given");
#ifdef RWKV_HAVE_POSIX
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return rwkv_fail(err, RWKV_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        close(fd);
        return rwkv_fail(err, RWKV_ERR_IO, "%s: cannot stat: %s", path, strerror(errno));
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return rwkv_fail(err, RWKV_ERR_IO, "%s: not a regular file", path);
    }
    if (st.st_size == 0) {
        close(fd);
        return RWKV_OK;
    }
#ifdef RWKV_HAVE_MMAP
    void *p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (p != MAP_FAILED) {
        map->data = p;
        map->size = (size_t)st.st_size;
        map->mapped = 1;
        return RWKV_OK;
    }
#else
    close(fd);
#endif
#endif
    return read_whole_file(path, map, err);
}

void rwkv_unmap_file(struct rwkv_file_map *map)
{
    if (!map || !map->data)
        return;
#ifdef RWKV_HAVE_MMAP
    if (map->mapped)
        munmap((void *)map->data, map->size);
    else
#endif
        free((void *)map->data);
    memset(map, 0, sizeof *map);
}

rwkv_status rwkv_write_file_atomic(const char *path, const void *const *parts, const size_t *sizes,
                                   size_t n_parts, struct rwkv_error *err)
{
    size_t plen = strlen(path);
    char *tmp = malloc(plen + 16);
    if (!tmp)
        return rwkv_fail(err, RWKV_ERR_NOMEM, "%s: out of memory", path);
    snprintf(tmp, plen + 16, "%s.tmp", path);
    FILE *f = fopen(tmp, "wb");
    if (!f) {
        rwkv_fail(err, RWKV_ERR_IO, "%s: cannot create: %s", tmp, strerror(errno));
        free(tmp);
        return RWKV_ERR_IO;
    }
    int ok = 1;
    for (size_t i = 0; i < n_parts && ok; i++)
        if (sizes[i] && fwrite(parts[i], 1, sizes[i], f) != sizes[i])
            ok = 0;
    if (fclose(f) != 0)
        ok = 0;
    if (!ok) {
        rwkv_fail(err, RWKV_ERR_IO, "%s: write failed: %s", tmp, strerror(errno));
        remove(tmp);
        free(tmp);
        return RWKV_ERR_IO;
    }
    if (rename(tmp, path) != 0) {
        rwkv_fail(err, RWKV_ERR_IO, "%s: cannot rename to %s: %s", tmp, path, strerror(errno));
        remove(tmp);
        free(tmp);
        return RWKV_ERR_IO;
    }
    free(tmp);
    return RWKV_OK;
}

double rwkv_time_seconds(void)
{
    struct timespec ts;
    timespec_get(&ts, TIME_UTC);
#if defined(CLOCK_MONOTONIC) && defined(RWKV_HAVE_POSIX)
    clock_gettime(CLOCK_MONOTONIC, &ts);
#endif
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

int rwkv_cpu_count(void)
{
#if defined(RWKV_HAVE_POSIX) && defined(_SC_NPROCESSORS_ONLN)
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    if (n > 0)
        return n > 256 ? 256 : (int)n;
#endif
    return 1;
}

/* ---- thread pool ----
 * Workers spin briefly on an atomic generation counter before sleeping on a condition variable: a
 * token of a small model is hundreds of short parallel ops, where a futex wake-up per op would cost
 * more than the op. */

#ifdef RWKV_HAVE_THREADS
#include <stdatomic.h>
#include <sched.h>
#define POOL_SPIN 20000
#endif

struct rwkv_pool {
    int n;
#ifdef RWKV_HAVE_THREADS
    pthread_t *threads;
    pthread_mutex_t run_mu; /* one job at a time: states on several threads may share a device */
    pthread_mutex_t mu;
    pthread_cond_t start_cv;
    rwkv_pool_fn fn;
    void *ctx;
    atomic_ulong generation;
    atomic_int pending;
    atomic_int sleepers;
    atomic_int quit;
#endif
};

#ifdef RWKV_HAVE_THREADS
struct worker_arg {
    struct rwkv_pool *pool;
    int index;
};

/* Waits until the generation moves past `seen` (or quit); returns the new generation. */
static unsigned long wait_generation(struct rwkv_pool *pool, unsigned long seen)
{
    for (int i = 0; i < POOL_SPIN; i++) {
        unsigned long g = atomic_load_explicit(&pool->generation, memory_order_acquire);
        if (g != seen || atomic_load(&pool->quit))
            return g;
    }
    pthread_mutex_lock(&pool->mu);
    atomic_fetch_add(&pool->sleepers, 1);
    while (atomic_load(&pool->generation) == seen && !atomic_load(&pool->quit))
        pthread_cond_wait(&pool->start_cv, &pool->mu);
    atomic_fetch_sub(&pool->sleepers, 1);
    pthread_mutex_unlock(&pool->mu);
    return atomic_load(&pool->generation);
}

static void *worker_main(void *p)
{
    struct worker_arg arg = *(struct worker_arg *)p;
    free(p);
    struct rwkv_pool *pool = arg.pool;
    unsigned long seen = 0;
    for (;;) {
        seen = wait_generation(pool, seen);
        if (atomic_load(&pool->quit))
            break;
        pool->fn(pool->ctx, arg.index, pool->n);
        atomic_fetch_sub_explicit(&pool->pending, 1, memory_order_release);
    }
    return NULL;
}
#endif

rwkv_status rwkv_pool_new(int n_threads, struct rwkv_pool **out, struct rwkv_error *err)
{
    *out = NULL;
    if (n_threads <= 0)
        n_threads = rwkv_cpu_count();
    if (n_threads > 256)
        return rwkv_fail(err, RWKV_ERR_ARG, "n_threads %d: at most 256", n_threads);
    struct rwkv_pool *pool = calloc(1, sizeof *pool);
    if (!pool)
        return rwkv_fail(err, RWKV_ERR_NOMEM, "out of memory creating a thread pool");
#ifdef RWKV_HAVE_THREADS
    pool->n = 1;
    pthread_mutex_init(&pool->run_mu, NULL);
    pthread_mutex_init(&pool->mu, NULL);
    pthread_cond_init(&pool->start_cv, NULL);
    atomic_init(&pool->generation, 0);
    atomic_init(&pool->pending, 0);
    atomic_init(&pool->sleepers, 0);
    atomic_init(&pool->quit, 0);
    pool->threads = calloc((size_t)n_threads, sizeof *pool->threads);
    if (!pool->threads) {
        rwkv_pool_free(pool);
        return rwkv_fail(err, RWKV_ERR_NOMEM, "out of memory creating a thread pool");
    }
    for (int i = 1; i < n_threads; i++) {
        struct worker_arg *arg = malloc(sizeof *arg);
        if (!arg || (arg->pool = pool, arg->index = i, pthread_create(&pool->threads[i], NULL, worker_main, arg) != 0)) {
            free(arg);
            rwkv_pool_free(pool); /* joins the pool->n - 1 workers that started */
            return rwkv_fail(err, RWKV_ERR_NOMEM, "cannot start thread %d of %d", i, n_threads);
        }
        pool->n = i + 1;
    }
    pool->n = n_threads;
#else
    pool->n = 1;
#endif
    *out = pool;
    return RWKV_OK;
}

void rwkv_pool_free(struct rwkv_pool *pool)
{
    if (!pool)
        return;
#ifdef RWKV_HAVE_THREADS
    if (pool->threads) {
        pthread_mutex_lock(&pool->mu);
        atomic_store(&pool->quit, 1);
        pthread_cond_broadcast(&pool->start_cv);
        pthread_mutex_unlock(&pool->mu);
        for (int i = 1; i < pool->n; i++)
            pthread_join(pool->threads[i], NULL);
        free(pool->threads);
    }
    pthread_mutex_destroy(&pool->mu);
    pthread_mutex_destroy(&pool->run_mu);
    pthread_cond_destroy(&pool->start_cv);
#endif
    free(pool);
}

int rwkv_pool_size(const struct rwkv_pool *pool)
{
    return pool ? pool->n : 1;
}

void rwkv_pool_run(struct rwkv_pool *pool, rwkv_pool_fn fn, void *ctx)
{
#ifdef RWKV_HAVE_THREADS
    if (pool && pool->n > 1) {
        pthread_mutex_lock(&pool->run_mu);
        pool->fn = fn;
        pool->ctx = ctx;
        atomic_store(&pool->pending, pool->n - 1);
        /* the release store publishes fn/ctx to workers that acquire the new generation */
        pthread_mutex_lock(&pool->mu);
        atomic_fetch_add_explicit(&pool->generation, 1, memory_order_release);
        if (atomic_load(&pool->sleepers) > 0)
            pthread_cond_broadcast(&pool->start_cv);
        pthread_mutex_unlock(&pool->mu);
        fn(ctx, 0, pool->n);
        for (int spins = 0; atomic_load_explicit(&pool->pending, memory_order_acquire) > 0; spins++)
            if (spins > POOL_SPIN)
                sched_yield();
        pthread_mutex_unlock(&pool->run_mu);
        return;
    }
#endif
    fn(ctx, 0, 1);
}
