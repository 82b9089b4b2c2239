/* The verify baseline of bench/growth_bench.lua: read every regular file
 * of a directory (not its subdirectories) and CRC32 it with zlib, as a
 * verify that trusted nothing would at least have to. Prints
 * "<bytes> <seconds>" (wall time of the reading and checksumming only). */
#define _POSIX_C_SOURCE 200809L
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <zlib.h>

int main(int argc, char **argv)
{
    if (argc != 2) { fprintf(stderr, "usage: crc_files DIR\n"); return 2; }
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
