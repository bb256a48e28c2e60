/* Thread basics a pthread implementation needs: 4 threads each check gettid() != getpid(), store
 * index*index, and return (void*)(index+1); main joins them, checks return values and results,
 * and that getpid() == gettid() in main (thread-group id vs thread id, CLONE_THREAD, join). */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>
#include <unistd.h>

#define NTHREADS 4

static long results[NTHREADS];
static int tid_differs[NTHREADS];

static void *worker(void *arg)
{
    intptr_t index = (intptr_t)arg;
    tid_differs[index] = gettid() != getpid();
    results[index] = (long)(index * index);
    return (void *)(index + 1);
}

int main(void)
{
    pthread_t t[NTHREADS];
    intptr_t i;
    int bad = 0;

    for (i = 0; i < NTHREADS; i++)
        if (pthread_create(&t[i], NULL, worker, (void *)i) != 0) {
            printf("pthread_create %d failed\n", (int)i);
            return 1;
        }
    for (i = 0; i < NTHREADS; i++) {
        void *ret;
        if (pthread_join(t[i], &ret) != 0) {
            printf("pthread_join %d failed\n", (int)i);
            return 1;
        }
        if (ret != (void *)(i + 1)) {
            printf("thread %d returned %ld, expected %d\n", (int)i, (long)(intptr_t)ret, (int)(i + 1));
            bad = 1;
        }
        if (results[i] != (long)(i * i)) {
            printf("thread %d stored %ld, expected %d\n", (int)i, results[i], (int)(i * i));
            bad = 1;
        }
        if (!tid_differs[i]) {
            printf("thread %d: gettid() == getpid()\n", (int)i);
            bad = 1;
        }
    }
    if (getpid() != gettid()) {
        printf("main: getpid() %d != gettid() %d\n", (int)getpid(), (int)gettid());
        bad = 1;
    }
    if (bad)
        return 1;
    printf("threads ok\n");
    return 0;
}
