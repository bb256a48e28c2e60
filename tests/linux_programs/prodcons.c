/* One producer and one consumer thread share a bounded ring of 8 ints guarded by a mutex and two
 * condition variables (not-empty, not-full); the producer puts 1..5000 then a sentinel 0.
 * Exercises futex wait/wake through pthread mutexes and condvars; output is deterministic. */
#include <pthread.h>
#include <stdio.h>

#define RING 8
#define NITEMS 5000

static int ring[RING];
static int head, tail, count;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t not_empty = PTHREAD_COND_INITIALIZER;
static pthread_cond_t not_full = PTHREAD_COND_INITIALIZER;
static long consumed_sum;
static int consumed_items;

static void put(int v)
{
    pthread_mutex_lock(&lock);
    while (count == RING)
        pthread_cond_wait(&not_full, &lock);
    ring[tail] = v;
    tail = (tail + 1) % RING;
    count++;
    pthread_cond_signal(&not_empty);
    pthread_mutex_unlock(&lock);
}

static int get(void)
{
    int v;
    pthread_mutex_lock(&lock);
    while (count == 0)
        pthread_cond_wait(&not_empty, &lock);
    v = ring[head];
    head = (head + 1) % RING;
    count--;
    pthread_cond_signal(&not_full);
    pthread_mutex_unlock(&lock);
    return v;
}

static void *producer(void *arg)
{
    int i;
    (void)arg;
    for (i = 1; i <= NITEMS; i++)
        put(i);
    put(0);
    return NULL;
}

static void *consumer(void *arg)
{
    int v;
    (void)arg;
    while ((v = get()) != 0) {
        consumed_sum += v;
        consumed_items++;
    }
    return NULL;
}

int main(void)
{
    pthread_t p, c;
    long expected = (long)NITEMS * (NITEMS + 1) / 2;

    if (pthread_create(&c, NULL, consumer, NULL) != 0 ||
        pthread_create(&p, NULL, producer, NULL) != 0) {
        printf("pthread_create failed\n");
        return 1;
    }
    pthread_join(p, NULL);
    pthread_join(c, NULL);
    printf("consumed %d items, sum %ld\n", consumed_items, consumed_sum);
    if (consumed_items != NITEMS || consumed_sum != expected) {
        printf("expected %d items, sum %ld\n", NITEMS, expected);
        return 1;
    }
    return 0;
}
