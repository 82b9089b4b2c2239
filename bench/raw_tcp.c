/* Raw TCP from C: the floor under the sync bench's node-to-node rows
 * (bench/sync_bench.lua). A child process writes BYTES bytes into a
 * loopback TCP connection in 1 MiB writes; the parent accepts, reads until
 * the child closes, and prints the seconds from the connection's accept to
 * the last byte read: no framing, no checksums, no storage.
 *
 *   raw_tcp BYTES
 */
#define _POSIX_C_SOURCE 200809L
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define CHUNK (1u << 20)

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static int send_all(unsigned short port, size_t bytes)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = port };
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a)) return 1;
    char *buf = malloc(CHUNK);
    if (!buf) return 1;
    for (size_t i = 0; i < CHUNK; i++) buf[i] = (char)(i * 2654435761u >> 24);
    for (size_t sent = 0; sent < bytes;) {
        size_t n = bytes - sent < CHUNK ? bytes - sent : CHUNK;
        ssize_t w = write(fd, buf, n);
        if (w <= 0) return 1;
        sent += (size_t)w;
    }
    free(buf);
    return close(fd) != 0;
}

int main(int argc, char **argv)
{
    if (argc != 2) { fprintf(stderr, "usage: raw_tcp BYTES\n"); return 2; }
    size_t bytes = strtoull(argv[1], NULL, 10);
    int ls = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = 0 };
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t alen = sizeof a;
    if (ls < 0 || bind(ls, (struct sockaddr *)&a, sizeof a) || listen(ls, 1) ||
        getsockname(ls, (struct sockaddr *)&a, &alen)) { perror("raw_tcp: listen"); return 1; }
    pid_t child = fork();
    if (child < 0) { perror("raw_tcp: fork"); return 1; }
    if (child == 0) _exit(send_all(a.sin_port, bytes));
    int fd = accept(ls, NULL, NULL);
    if (fd < 0) { perror("raw_tcp: accept"); return 1; }
    double t0 = now();
    char *buf = malloc(CHUNK);
    size_t got = 0;
    ssize_t r;
    while (buf && (r = read(fd, buf, CHUNK)) > 0) got += (size_t)r;
    double t = now() - t0;
    int status = 0;
    waitpid(child, &status, 0);
    free(buf);
    if (got != bytes || !WIFEXITED(status) || WEXITSTATUS(status)) {
        fprintf(stderr, "raw_tcp: got %zu of %zu bytes\n", got, bytes);
        return 1;
    }
    printf("%.6f\n", t);
    return 0;
}
