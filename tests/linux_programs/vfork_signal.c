/* A signal to a vfork parent stays pending until the child exits; the parent never runs beside it.
   (Found by review of the tasks change; tests/test_linux_tasks.py runs it natively and under rrtool.) */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <sys/wait.h>
volatile int shared = 0;
static void h(int s) { (void)s; }
int main(void) {
    struct sigaction sa; memset(&sa, 0, sizeof sa); sa.sa_handler = h;
    sigaction(SIGUSR1, &sa, 0);
    pid_t p = vfork();
    if (p == 0) {
        kill(getppid(), SIGUSR1);
        for (volatile long i = 0; i < 30000000; i++) shared = 1;  /* longer than a slice */
        shared = 2;
        _exit(7);
    }
    int after = shared;  /* Linux: always 2, the parent is held until the child exits */
    int st; waitpid(p, &st, 0);
    printf("parent saw shared=%d status=%d\n", after, WEXITSTATUS(st));
    return 0;
}
