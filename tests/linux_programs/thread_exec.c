/* A thread that execs goes on as the process's leader (pid == tid); the other threads end.
   (Found by review of the tasks change; tests/test_linux_tasks.py runs it natively and under rrtool.) */
#include <pthread.h>
#include <stdio.h>
#include <unistd.h>
#include <sys/syscall.h>
static void *t(void *a) {
    (void)a;
    char *argv[] = {"thread_exec", "child", 0};
    execv("/proc/self/exe", argv);
    perror("execv");
    return 0;
}
int main(int argc, char **argv) {
    if (argc > 1) {
        printf("after exec: pid=%d tid=%ld\n", getpid(), (long)syscall(SYS_gettid));
        return 3;
    }
    pthread_t th; pthread_create(&th, 0, t, 0);
    for (;;) pause();
}
