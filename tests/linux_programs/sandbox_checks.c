/* Sandbox and file-semantics probes for rrtool's Linux platform (tests/test_linux_sandbox.py).
 * Usage: sandbox_checks CHECK; each check prints what it saw, one line. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static void cat(const char *path)
{
    char buf[256];
    int fd = open(path, O_RDONLY);
    if (fd < 0) {
        printf("open %s: %s\n", path, strerror(errno));
        return;
    }
    long n = read(fd, buf, sizeof buf - 1);
    buf[n > 0 ? n : 0] = 0;
    printf("read %s: %s\n", path, buf);
    close(fd);
}

int main(int argc, char **argv)
{
    const char *check = argc > 1 ? argv[1] : "";
    if (!strcmp(check, "shadow")) { /* /link -> a host directory: replace it by a directory, look inside */
        unlink("/link");
        mkdir("/link", 0755);
        cat("/link/secret");
    } else if (!strcmp(check, "fchange")) { /* change a root file through a read-only descriptor */
        int fd = open("/f.txt", O_RDONLY);
        struct timespec ts[2] = {{0, 0}, {0, 0}};
        printf("fchmod %d futimens %d\n", fchmod(fd, 0777), futimens(fd, ts));
    } else if (!strcmp(check, "rename")) { /* a directory moved in the overlay keeps what it holds */
        printf("rename %d\n", rename("/d", "/d3"));
        struct stat st;
        printf("d3/e/x %s, d %s\n", stat("/d3/e/x", &st) ? strerror(errno) : "there",
               stat("/d", &st) ? strerror(errno) : "there");
        int fd = open("/f.txt", O_RDONLY);
        printf("file onto dir: %s\n", rename("/f.txt", "/d3") ? strerror(errno) : "renamed");
        close(fd);
    } else if (!strcmp(check, "trunc")) { /* O_TRUNC of an existing root file, in the overlay */
        int fd = open("/f.txt", O_WRONLY | O_TRUNC);
        struct stat st;
        fstat(fd, &st);
        printf("fd %d mode %o size %ld\n", fd, st.st_mode & 0777, (long)st.st_size);
    } else if (!strcmp(check, "slash")) { /* a trailing slash names a directory */
        struct stat st;
        printf("f.txt/: %s; d/: %s\n", lstat("/f.txt/", &st) ? strerror(errno) : "ok",
               lstat("/d/", &st) ? strerror(errno) : "ok");
    } else if (!strcmp(check, "code")) { /* read() new code over code already run */
        unsigned char *page = mmap(0, 4096, PROT_READ | PROT_WRITE | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        memcpy(page, "\xb8\x01\x00\x00\x00\xc3", 6); /* mov eax, 1; ret */
        int first = ((int (*)(void))page)();
        int fd = open("/code.bin", O_RDONLY); /* mov eax, 2; ret */
        read(fd, page, 6);
        printf("before %d after %d\n", first, ((int (*)(void))page)());
    } else if (!strcmp(check, "append")) { /* O_APPEND set by fcntl reaches the file */
        int fd = open("/f.txt", O_WRONLY);
        fcntl(fd, F_SETFL, O_APPEND);
        write(fd, "Z", 1);
        close(fd);
        cat("/f.txt");
    } else if (!strcmp(check, "sleep")) { /* a bad timespec is EINVAL, as errno */
        struct timespec bad = {0, 2000000000};
        int r = nanosleep(&bad, 0);
        printf("nanosleep %d %s\n", r, strerror(errno));
    }
    return 0;
}
