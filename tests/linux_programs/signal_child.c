/* Parent and forked child handshake over a pipe: the child catches SIGUSR1 (sigaction handler
 * setting a flag, pause() loop), reports it, then dies from SIGTERM's default action. Checks
 * signal delivery between processes, pause() interruption, and WIFSIGNALED/WTERMSIG in waitpid. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

static volatile sig_atomic_t got_usr1;

static void on_usr1(int sig)
{
    (void)sig;
    got_usr1 = 1;
}

static int read_byte(int fd, const char *what)
{
    char c;
    ssize_t n;
    do
        n = read(fd, &c, 1);
    while (n < 0 && errno == EINTR);
    if (n != 1) {
        printf("parent: reading %s byte: %s\n", what, n < 0 ? strerror(errno) : "EOF");
        return -1;
    }
    return 0;
}

int main(void)
{
    int fds[2], st;
    pid_t child;

    if (pipe(fds) != 0) {
        printf("pipe: %s\n", strerror(errno));
        return 1;
    }
    fflush(stdout);
    child = fork();
    if (child < 0) {
        printf("fork: %s\n", strerror(errno));
        return 1;
    }
    if (child == 0) {
        struct sigaction sa;
        close(fds[0]);
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = on_usr1;
        sigemptyset(&sa.sa_mask);
        if (sigaction(SIGUSR1, &sa, NULL) != 0)
            _exit(2);
        if (write(fds[1], "r", 1) != 1) /* ready */
            _exit(3);
        while (!got_usr1)
            pause();
        printf("child got SIGUSR1\n");
        fflush(stdout);
        if (write(fds[1], "p", 1) != 1) /* printed */
            _exit(4);
        for (;;)
            pause(); /* SIGTERM, default action, ends us */
    }
    close(fds[1]);
    if (read_byte(fds[0], "ready") != 0)
        return 1;
    if (kill(child, SIGUSR1) != 0) {
        printf("kill SIGUSR1: %s\n", strerror(errno));
        return 1;
    }
    if (read_byte(fds[0], "printed") != 0)
        return 1;
    if (kill(child, SIGTERM) != 0) {
        printf("kill SIGTERM: %s\n", strerror(errno));
        return 1;
    }
    if (waitpid(child, &st, 0) != child) {
        printf("waitpid: %s\n", strerror(errno));
        return 1;
    }
    if (WIFSIGNALED(st) && WTERMSIG(st) == SIGTERM) {
        printf("child killed by signal %d\n", WTERMSIG(st));
        return 0;
    }
    if (WIFSIGNALED(st))
        printf("child killed by signal %d, expected %d\n", WTERMSIG(st), SIGTERM);
    else if (WIFEXITED(st))
        printf("child exited with status %d, expected signal %d\n", WEXITSTATUS(st), SIGTERM);
    else
        printf("child wait status 0x%x, expected signal %d\n", st, SIGTERM);
    return 1;
}
