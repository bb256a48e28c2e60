/* A process-directed signal that interrupts a blocked read is taken by that thread, and SA_RESTART restarts the read.
   (Found by review of the tasks change; tests/test_linux_tasks.py runs it natively and under rrtool.) */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
int fds[2];
volatile int handled_in_main = -1;
pthread_t main_thread;
static void h(int s) { (void)s; handled_in_main = pthread_equal(pthread_self(), main_thread); }
static void *t(void *a) {
    (void)a;
    for (volatile long i = 0; i < 3000000; i++) ;  /* let main block in read */
    kill(getpid(), SIGUSR1);
    for (volatile long i = 0; i < 3000000; i++) ;
    write(fds[1], "x", 1);
    return 0;
}
int main(void) {
    main_thread = pthread_self();
    struct sigaction sa; memset(&sa, 0, sizeof sa); sa.sa_handler = h; sa.sa_flags = SA_RESTART;
    sigaction(SIGUSR1, &sa, 0);
    pipe(fds);
    pthread_t th; pthread_create(&th, 0, t, 0);
    char c; ssize_t n = read(fds[0], &c, 1);
    printf("read=%zd errno=%s handled_in_main=%d\n", n, n < 0 ? strerror(errno) : "-", handled_in_main);
    pthread_join(th, 0);
    return 0;
}
