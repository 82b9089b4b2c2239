/* Baselines of bench/growth_bench.lua.
 *   crc_files DIR          read every regular file of DIR (not its
 *                          subdirectories) and CRC32 it with zlib, as a
 *                          verify that trusted nothing would at least have
 *                          to; prints "<bytes> <seconds>" (that work only)
 *   crc_files --fsync DIR  the median seconds of 15 write(4 KiB) + fsync of
 *                          a new file in DIR: the unit a backup's fixed
 *                          cost is made of */
#define _POSIX_C_SOURCE 200809L
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <fcntl.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static int fsync_time(const char *dir)
{
    enum { N = 15 };
    double t[N];
    char path[4096], block[4096];
    memset(block, 'x', sizeof block);
    for (int i = 0; i < N; i++) {
        snprintf(path, sizeof path, "%s/fsync-%d.tmp", dir, i);
        double t0 = now();
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd < 0 || write(fd, block, sizeof block) != (ssize_t)sizeof block || fsync(fd) != 0) {
            perror(path);
            return 1;
        }
        close(fd);
        t[i] = now() - t0;
        unlink(path);
    }
    qsort(t, N, sizeof *t, cmp_double);
    printf("%.6f\n", t[N / 2]);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "--fsync") == 0) return fsync_time(argv[2]);
    if (argc != 2) { fprintf(stderr, "usage: crc_files [--fsync] DIR\n"); return 2; }
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    DIR *d = opendir(argv[1]);
    if (!d) { perror(argv[1]); return 1; }
    static unsigned char buf[1 << 20];
    unsigned long long bytes = 0;
    uLong crc = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        char path[4096];
        struct stat st;
        snprintf(path, sizeof path, "%s/%s", argv[1], de->d_name);
        if (stat(path, &st) != 0 || !S_ISREG(st.st_mode)) continue;
        FILE *f = fopen(path, "rb");
        if (!f) continue;
        size_t got;
        uLong c = crc32(0L, Z_NULL, 0);
        while ((got = fread(buf, 1, sizeof buf, f)) > 0) {
            c = crc32(c, buf, (uInt)got);
            bytes += got;
        }
        fclose(f);
        crc ^= c;
    }
    closedir(d);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    printf("%llu %.6f %lx\n", bytes, (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9, crc);
    return 0;
}
