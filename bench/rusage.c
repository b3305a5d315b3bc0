/*
 * rusage: run one command, report its wall time and peak RSS.
 *
 *   rusage [-i] [-E envfile]... [-e NAME=VALUE]... [-o outfile] [-d dir] -- cmd [args...]
 *
 * -i starts from an empty environment that keeps only PATH, HOME, LANG, LC_ALL, TMPDIR and
 *    TERM (so CURL_CA_BUNDLE, NODE_EXTRA_CA_CERTS, ALLOY_*, proxies... of the caller do not
 *    leak into a measurement); it must come before -E/-e.
 * -E loads NAME=VALUE lines from a file into the child's environment (this is how the
 *    bench passes its API key: never on any argv). Blank lines and '#' lines are skipped.
 * -e sets one variable (for non-secret values only: it is visible in argv).
 * -o sends the child's stdout to outfile ("-" = inherit; default /dev/null).
 * -d runs the child in dir.
 *
 * Prints one line on stdout: "<wall_seconds> <maxrss_kb> <exit_code>"
 * (exit_code is 128+signal when the child was killed by a signal, 127 when exec failed).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static void usage(void)
{
    fprintf(stderr, "usage: rusage [-i] [-E envfile]... [-e NAME=VALUE]... [-o outfile] [-d dir] -- cmd [args...]\n");
    exit(2);
}

static void load_env_file(const char *path)
{
    FILE *f = fopen(path, "r");
    char line[8192];
    if (!f) {
        fprintf(stderr, "rusage: cannot open %s: %s\n", path, strerror(errno));
        exit(2);
    }
    while (fgets(line, sizeof line, f)) {
        size_t n = strlen(line);
        char *eq;
        while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
            line[--n] = '\0';
        if (n == 0 || line[0] == '#')
            continue;
        eq = strchr(line, '=');
        if (!eq || eq == line) {
            fprintf(stderr, "rusage: %s: malformed line (expected NAME=VALUE)\n", path);
            exit(2);
        }
        *eq = '\0';
        if (setenv(line, eq + 1, 1) != 0) {
            perror("rusage: setenv");
            exit(2);
        }
    }
    fclose(f);
}

static void clean_environment(void)
{
    static const char *const keep[] = { "PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "TERM" };
    char *saved[sizeof keep / sizeof keep[0]];
    size_t i;
    for (i = 0; i < sizeof keep / sizeof keep[0]; i++) {
        const char *v = getenv(keep[i]);
        saved[i] = v ? strdup(v) : NULL;
    }
    if (clearenv() != 0) {
        fprintf(stderr, "rusage: clearenv failed\n");
        exit(2);
    }
    for (i = 0; i < sizeof keep / sizeof keep[0]; i++) {
        if (saved[i]) {
            setenv(keep[i], saved[i], 1);
            free(saved[i]);
        }
    }
    if (!getenv("PATH"))
        setenv("PATH", "/usr/local/bin:/usr/bin:/bin", 1);
}

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    const char *outfile = "/dev/null";
    const char *dir = NULL;
    int i = 1;
    double t0, t1;
    pid_t pid;
    int status = 0, code;
    struct rusage ru;

    while (i < argc && strcmp(argv[i], "--") != 0) {
        if (strcmp(argv[i], "-i") == 0) {
            clean_environment();
            i++;
            continue;
        }
        if (i + 1 >= argc)
            usage();
        if (strcmp(argv[i], "-E") == 0) {
            load_env_file(argv[i + 1]);
        } else if (strcmp(argv[i], "-e") == 0) {
            char *eq = strchr(argv[i + 1], '=');
            if (!eq || eq == argv[i + 1])
                usage();
            *eq = '\0';
            if (setenv(argv[i + 1], eq + 1, 1) != 0) {
                perror("rusage: setenv");
                return 2;
            }
            *eq = '=';
        } else if (strcmp(argv[i], "-o") == 0) {
            outfile = argv[i + 1];
        } else if (strcmp(argv[i], "-d") == 0) {
            dir = argv[i + 1];
        } else {
            usage();
        }
        i += 2;
    }
    if (i + 1 >= argc)
        usage();
    i++; /* skip "--" */

    fflush(NULL);
    t0 = now_seconds();
    pid = fork();
    if (pid < 0) {
        perror("rusage: fork");
        return 2;
    }
    if (pid == 0) {
        if (strcmp(outfile, "-") != 0) {
            int fd = open(outfile, O_WRONLY | O_CREAT | O_TRUNC, 0600);
            if (fd < 0 || dup2(fd, 1) < 0) {
                fprintf(stderr, "rusage: cannot open %s: %s\n", outfile, strerror(errno));
                _exit(127);
            }
            close(fd);
        }
        if (dir && chdir(dir) != 0) {
            fprintf(stderr, "rusage: cannot chdir to %s: %s\n", dir, strerror(errno));
            _exit(127);
        }
        execvp(argv[i], argv + i);
        fprintf(stderr, "rusage: cannot run %s: %s\n", argv[i], strerror(errno));
        _exit(127);
    }
    while (wait4(pid, &status, 0, &ru) < 0) {
        if (errno != EINTR) {
            perror("rusage: wait4");
            return 2;
        }
    }
    t1 = now_seconds();
    if (WIFEXITED(status))
        code = WEXITSTATUS(status);
    else if (WIFSIGNALED(status))
        code = 128 + WTERMSIG(status);
    else
        code = 255;
    printf("%.6f %ld %d\n", t1 - t0, ru.ru_maxrss, code);
    return 0;
}
