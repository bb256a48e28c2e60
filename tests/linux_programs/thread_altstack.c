/* A new thread starts without the alternate signal stack its creator set up.
   (Found by review of the tasks change; tests/test_linux_tasks.py runs it natively and under rrtool.) */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
static void *t(void *a) { (void)a; stack_t o; sigaltstack(0, &o); printf("thread altstack flags=%d sp=%p\n", o.ss_flags, o.ss_sp); return 0; }
int main(void) {
    stack_t s = { .ss_sp = malloc(65536), .ss_size = 65536, .ss_flags = 0 };
    sigaltstack(&s, 0);
    pthread_t th; pthread_create(&th, 0, t, 0); pthread_join(th, 0);
    return 0;
}
