/* Forks 50 children; child i exits at once with status (i*5+3)&0xFF. The parent reaps them all with
 * waitpid(-1) in whatever order they come, checks each pid's status, then checks that one more
 * waitpid(-1) fails with ECHILD. Exercises fork, exit, SIGCHLD/zombie bookkeeping and wait. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#define NCHILD 50

int main(void)
{
    pid_t pids[NCHILD];
    int reaped[NCHILD] = {0};
    int i, n, sum = 0;

    for (i = 0; i < NCHILD; i++) {
        pid_t p = fork();
        if (p < 0) {
            printf("fork %d failed: %s\n", i, strerror(errno));
            return 1;
        }
        if (p == 0)
            _exit((i * 5 + 3) & 0xFF);
        pids[i] = p;
    }
    for (n = 0; n < NCHILD; n++) {
        int st;
        pid_t p = waitpid(-1, &st, 0);
        if (p < 0) {
            printf("waitpid failed after %d children: %s\n", n, strerror(errno));
            return 1;
        }
        for (i = 0; i < NCHILD && pids[i] != p; i++)
            ;
        if (i == NCHILD) {
            printf("waitpid returned unknown pid %d\n", (int)p);
            return 1;
        }
        if (reaped[i]) {
            printf("child %d (pid %d) reaped twice\n", i, (int)p);
            return 1;
        }
        reaped[i] = 1;
        if (!WIFEXITED(st)) {
            printf("child %d (pid %d) did not exit normally: status 0x%x\n", i, (int)p, st);
            return 1;
        }
        if (WEXITSTATUS(st) != ((i * 5 + 3) & 0xFF)) {
            printf("child %d (pid %d) exit status %d, expected %d\n", i, (int)p, WEXITSTATUS(st),
                   (i * 5 + 3) & 0xFF);
            return 1;
        }
        sum += WEXITSTATUS(st);
    }
    {
        int st;
        pid_t p = waitpid(-1, &st, 0);
        if (p != -1 || errno != ECHILD) {
            printf("extra waitpid returned %d (%s), expected ECHILD\n", (int)p,
                   p < 0 ? strerror(errno) : "no error");
            return 1;
        }
    }
    printf("reaped %d children, status sum %d\n", NCHILD, sum);
    return 0;
}
