/* Writes one valid record of each type (and each codec) as fuzz seeds, so
 * the fuzzer starts from the real format instead of guessing msgpack. */
#include "codec/sn_record.h"

#include <stdio.h>
#include <stdlib.h>

static void write_seed(const char *dir, const char *name, const sn_buf *b)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(b->data, 1, b->len, f) != b->len) { perror(path); exit(1); }
    fclose(f);
}

int main(int argc, char **argv)
{
    const char *dir = argc > 1 ? argv[1] : ".";
    sn_arena a;
    sn_err e;
    sn_arena_init(&a);
    float w[64];
    for (int i = 0; i < 64; i++) w[i] = (float)(i - 32) * 0.01f;

    sn_value m;
    sn_record_map(&sn_schema_weights, &a, &m, &e);
    sn_map_set(&m, "expert_id", sn_cstr("coding"));
    sn_map_set(&m, "layer", sn_int(1));
    sn_map_set(&m, "version", sn_int(3));
    sn_map_set(&m, "timestamp", sn_num(1.5e9));
    sn_map_set(&m, "hlc", sn_int(12345));
    sn_map_set(&m, "origin", sn_cstr("node-a"));
    sn_map_set(&m, "n_weights", sn_int(60));
    sn_map_set(&m, "n_biases", sn_int(4));
    sn_part parts[2] = { { w, 60 * sizeof(float) }, { w + 60, 4 * sizeof(float) } };
    for (int c = 0; c < SN_CODEC_COUNT; c++) {
        sn_buf b;
        char name[64];
        if (sn_record_encode(SN_REC_WEIGHTS, &m, parts, 2, (sn_codec)c, &b, &e)) {
            fprintf(stderr, "%s\n", e.msg);
            return 1;
        }
        snprintf(name, sizeof name, "weights-%s", sn_codec_name((sn_codec)c));
        write_seed(dir, name, &b);
        free(b.data);
    }

    sn_value cfg;
    sn_record_map(&sn_schema_config, &a, &cfg, &e);
    sn_map_set(&cfg, "expert_id", sn_cstr("coding"));
    sn_map_set(&cfg, "domain", sn_cstr("coding"));
    sn_map_set(&cfg, "parameter_count", sn_int(1000));
    sn_map_set(&cfg, "learning_rate", sn_num(0.01));
    sn_map_set(&cfg, "architecture", sn_cstr("96-192-128-64"));
    sn_buf b;
    if (sn_record_encode(SN_REC_CONFIG, &cfg, NULL, 0, SN_CODEC_NONE, &b, &e)) return 1;
    write_seed(dir, "config", &b);
    free(b.data);

    sn_value metric;
    sn_record_map(&sn_schema_metric, &a, &metric, &e);
    sn_map_set(&metric, "name", sn_cstr("loss"));
    sn_map_set(&metric, "timestamp", sn_num(100));
    sn_map_set(&metric, "value", sn_num(0.5));
    if (sn_record_encode(SN_REC_METRIC, &metric, NULL, 0, SN_CODEC_NONE, &b, &e)) return 1;
    write_seed(dir, "metric", &b);
    free(b.data);
    sn_arena_free(&a);
    return 0;
}
