#include "codec/sn_mpcheck.h"

static uint64_t be(const unsigned char *p, int n)
{
    uint64_t v = 0;
    for (int i = 0; i < n; i++) v = (v << 8) | p[i];
    return v;
}

/* Work list instead of recursion: "objects still to read" per open
 * container, so depth is bounded by the array below, not the C stack. */
int sn_mpcheck(const unsigned char *data, size_t len, size_t *used)
{
    uint64_t pending[SN_MAX_DEPTH + 1];
    int depth = 0;
    size_t pos = 0;
    pending[0] = 1;

    while (depth >= 0) {
        if (pending[depth] == 0) { depth--; continue; }
        pending[depth]--;
        if (pos >= len) return -1;
        unsigned char t = data[pos++];
        uint64_t skip = 0, children = 0;
        int hdr = 0;

        if (t <= 0x7f || t >= 0xe0 || t == 0xc0 || t == 0xc2 || t == 0xc3) {
            /* fixint, nil, bool: the tag is the whole object */
        } else if (t >= 0xa0 && t <= 0xbf) {
            skip = t & 0x1f;
        } else if (t >= 0x90 && t <= 0x9f) {
            children = t & 0x0f;
        } else if (t >= 0x80 && t <= 0x8f) {
            children = 2u * (t & 0x0f);
        } else {
            switch (t) {
            case 0xcc: case 0xd0: skip = 1; break;
            case 0xcd: case 0xd1: skip = 2; break;
            case 0xca: case 0xce: case 0xd2: skip = 4; break;
            case 0xcb: case 0xcf: case 0xd3: skip = 8; break;
            case 0xd4: skip = 2; break;       /* fixext: type byte + data */
            case 0xd5: skip = 3; break;
            case 0xd6: skip = 5; break;
            case 0xd7: skip = 9; break;
            case 0xd8: skip = 17; break;
            case 0xc4: case 0xd9: hdr = 1; break;   /* bin8, str8 */
            case 0xc5: case 0xda: hdr = 2; break;
            case 0xc6: case 0xdb: hdr = 4; break;
            case 0xc7: case 0xc8: case 0xc9:        /* ext: len + type */
                hdr = t == 0xc7 ? 1 : t == 0xc8 ? 2 : 4;
                if (len - pos < (size_t)hdr) return -1;
                skip = be(data + pos, hdr) + 1;
                pos += (size_t)hdr;
                hdr = 0;
                break;
            case 0xdc: case 0xdd:
                if (len - pos < (t == 0xdc ? 2u : 4u)) return -1;
                children = be(data + pos, t == 0xdc ? 2 : 4);
                pos += t == 0xdc ? 2 : 4;
                break;
            case 0xde: case 0xdf:
                if (len - pos < (t == 0xde ? 2u : 4u)) return -1;
                children = 2 * be(data + pos, t == 0xde ? 2 : 4);
                pos += t == 0xde ? 2 : 4;
                break;
            default:
                return -1;   /* 0xc1 is never used */
            }
        }
        if (hdr) {
            if (len - pos < (size_t)hdr) return -1;
            skip = be(data + pos, hdr);
            pos += (size_t)hdr;
        }
        if (skip > len - pos) return -1;
        pos += (size_t)skip;
        if (children) {
            /* each element takes at least one byte */
            if (children > len - pos || children > 2u * SN_MAX_ITEMS) return -1;
            if (depth + 1 > SN_MAX_DEPTH) return -1;
            pending[++depth] = children;
        }
    }
    *used = pos;
    return 0;
}
