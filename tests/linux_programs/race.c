/* Two threads each do counter++ on a shared volatile counter, with no lock, ITER times (argv[1],
 * default 200000). The increment is a separate load and store, so a preemption between them loses
 * an update: "total N" shows whether (and how deterministically) thread interleaving is replayed. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

static volatile long counter;
static long iter = 200000;

static void *worker(void *arg)
{
    long i;
    (void)arg;
    for (i = 0; i < iter; i++)
        counter++; /* volatile: load, add, store; not atomic */
    return NULL;
}

int main(int argc, char **argv)
{
    pthread_t t[2];
    int i;

    if (argc > 1)
        iter = strtol(argv[1], NULL, 10);
    for (i = 0; i < 2; i++)
        if (pthread_create(&t[i], NULL, worker, NULL) != 0) {
            printf("pthread_create %d failed\n", i);
            return 1;
        }
    for (i = 0; i < 2; i++)
        pthread_join(t[i], NULL);
    printf("total %ld\n", counter);
    return 0;
}
