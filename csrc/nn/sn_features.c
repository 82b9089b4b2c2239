/* Text features and cue scores: one pass over the bytes gathers every
 * count, then the two entry points lay them out. The runtime calls this
 * once per expert and once for the gate on every query, so the pass is
 * allocation-free and keyword matching is filtered by first letter. */
#include "nn/sn_features.h"

#include <math.h>
#include <string.h>

/* What a keyword adds to: a cue slot (the word-count slots of the cue
 * block), which also names its domain for the cue scores. */
typedef struct keyword {
    const char *word;
    unsigned char len;
    unsigned char slot;
} keyword;

#define KW(w, slot) { w, sizeof(w) - 1, slot }

static const keyword keywords[] = {
    KW("if", SN_CUE_REASONING_WORDS),       KW("then", SN_CUE_REASONING_WORDS),
    KW("because", SN_CUE_REASONING_WORDS),  KW("why", SN_CUE_REASONING_WORDS),
    KW("explain", SN_CUE_REASONING_WORDS),  KW("reason", SN_CUE_REASONING_WORDS),
    KW("function", SN_CUE_CODING_WORDS),    KW("def", SN_CUE_CODING_WORDS),
    KW("code", SN_CUE_CODING_WORDS),        KW("debug", SN_CUE_CODING_WORDS),
    KW("implement", SN_CUE_CODING_WORDS),   KW("program", SN_CUE_CODING_WORDS),
    KW("translate", SN_CUE_LANGUAGE_WORDS), KW("language", SN_CUE_LANGUAGE_WORDS),
    KW("grammar", SN_CUE_LANGUAGE_WORDS),   KW("word", SN_CUE_LANGUAGE_WORDS),
    KW("calculate", SN_CUE_OPERATORS),      KW("solve", SN_CUE_OPERATORS),
    KW("equation", SN_CUE_OPERATORS),       KW("math", SN_CUE_OPERATORS),
    KW("use", SN_CUE_TOOL_WORDS),           KW("uses", SN_CUE_TOOL_WORDS),
    KW("used", SN_CUE_TOOL_WORDS),          KW("using", SN_CUE_TOOL_WORDS),
    KW("tool", SN_CUE_TOOL_WORDS),          KW("run", SN_CUE_TOOL_WORDS),
    KW("runs", SN_CUE_TOOL_WORDS),          KW("running", SN_CUE_TOOL_WORDS),
    KW("execute", SN_CUE_TOOL_WORDS),       KW("context", SN_CUE_CONTEXT_WORDS),
    KW("remember", SN_CUE_CONTEXT_WORDS),   KW("previous", SN_CUE_CONTEXT_WORDS),
    KW("earlier", SN_CUE_CONTEXT_WORDS),    KW("history", SN_CUE_CONTEXT_WORDS),
    KW("conversation", SN_CUE_CONTEXT_WORDS),
};

#define NKEYWORDS (sizeof keywords / sizeof keywords[0])
/* Longer words can still match by prefix; only this much is compared. */
#define WORD_PREFIX 16

static const char *const domain_names[SN_DOMAIN_COUNT] = {
    "reasoning", "coding", "language", "mathematics", "tool_use", "context",
};

const char *sn_domain_name(int domain)
{
    return domain >= 0 && domain < SN_DOMAIN_COUNT ? domain_names[domain] : NULL;
}

typedef struct counts {
    unsigned slot[SN_FEATURE_CUES];   /* raw counts for the count slots */
    unsigned words, sentences;
} counts;

static unsigned char lower(unsigned char c)
{
    return c >= 'A' && c <= 'Z' ? (unsigned char)(c - 'A' + 'a') : c;
}

static int is_letter(unsigned char c)
{
    c = lower(c);
    return c >= 'a' && c <= 'z';
}

static int is_digit(unsigned char c)
{
    return c >= '0' && c <= '9';
}

static int is_word_byte(unsigned char c)
{
    return is_letter(c) || is_digit(c) || c == '_' || c >= 0x80;
}

static int is_space(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

static void match_word(counts *c, const unsigned char *w, size_t len)
{
    for (size_t k = 0; k < NKEYWORDS; k++) {
        const keyword *kw = &keywords[k];
        if ((unsigned char)kw->word[0] != w[0]) continue;
        int whole = len == kw->len;
        int prefix = kw->len >= 4 && len > kw->len;
        if ((whole || prefix) && memcmp(w, kw->word, kw->len) == 0) c->slot[kw->slot]++;
    }
}

static void scan(const unsigned char *s, size_t len, counts *c)
{
    memset(c, 0, sizeof *c);
    unsigned char word[WORD_PREFIX];
    size_t wlen = 0;
    int in_number = 0, words_since_stop = 0;
    for (size_t i = 0; i <= len; i++) {
        unsigned char ch = i < len ? s[i] : ' ';   /* a space at the end closes the last word */
        unsigned char prev = i > 0 ? s[i - 1] : ' ';
        unsigned char next = i + 1 < len ? s[i + 1] : ' ';
        if (is_word_byte(ch)) {
            if (wlen < WORD_PREFIX) word[wlen] = lower(ch);
            wlen++;
        } else if (wlen) {
            c->words++;
            words_since_stop = 1;
            match_word(c, word, wlen < WORD_PREFIX ? wlen : WORD_PREFIX);
            wlen = 0;
        }
        if (i == len) break;

        if (is_digit(ch)) {
            if (!in_number) c->slot[SN_CUE_NUMBERS]++;
            in_number = 1;
        } else if (!((ch == '.' || ch == ',') && in_number && is_digit(next))) {
            in_number = 0;   /* 3.14 and 1,000 are one number each */
        }
        switch (ch) {
        case '{': case '}': case ';':
            c->slot[SN_CUE_CODE_SYMBOLS]++;
            break;
        case '+': case '*': case '=': case '^':
            c->slot[SN_CUE_OPERATORS]++;
            break;
        case '-': case '/':
            /* "well-known" and "and/or" are words, not arithmetic */
            if (!(is_letter(prev) && is_letter(next))) c->slot[SN_CUE_OPERATORS]++;
            break;
        case '?':
            c->slot[SN_CUE_QUESTIONS]++;
            /* fall through */
        case '.': case '!':
            /* a stop ends a sentence when a word came before it and space
             * or the end follows: not in "3.14" or "e.g" or "..." runs */
            if (words_since_stop && (i + 1 == len || is_space(next))) {
                c->sentences++;
                words_since_stop = 0;
            }
            break;
        default:
            break;
        }
    }
    if (words_since_stop) c->sentences++;   /* a last sentence without a stop */
}

/* A word longer than WORD_PREFIX was passed to match_word cut to
 * WORD_PREFIX bytes; since every keyword is shorter than that, the cut word
 * is still longer than the keyword and so matches by prefix only, as the
 * whole word would. */
_Static_assert(sizeof "conversation" - 1 < WORD_PREFIX, "keywords must be shorter than WORD_PREFIX");

static float squash(unsigned count)
{
    return (float)count / (1.0f + (float)count);
}

/* Piecewise-linear log2 between powers of two: frexp only splits the bits,
 * so unlike libm's log2 it is exact and the same everywhere. */
static double log2_linear(double x)
{
    int e;
    double m = frexp(x, &e);   /* x = m * 2^e, m in [0.5, 1) */
    return (double)(e - 1) + (2.0 * m - 1.0);
}

static float capped(double x)
{
    return x > 1.0 ? 1.0f : (float)x;
}

static void fill_ngrams(const unsigned char *s, size_t len, float *out, size_t nb)
{
    memset(out, 0, nb * sizeof(float));
    unsigned char g0 = 0, g1 = ' ';   /* the stream starts with a space */
    size_t have = 1;
    double sumsq = 0;
    for (size_t i = 0; i <= len; i++) {
        unsigned char ch = i < len ? lower(s[i]) : ' ';
        if (is_space(ch)) {
            ch = ' ';
            if (g1 == ' ') continue;   /* collapse runs of whitespace */
        }
        if (have >= 2) {
            uint32_t h = 2166136261u;
            h = (h ^ g0) * 16777619u;
            h = (h ^ g1) * 16777619u;
            h = (h ^ ch) * 16777619u;
            out[h % nb] += (h >> 31) ? -1.0f : 1.0f;
        }
        g0 = g1;
        g1 = ch;
        have++;
    }
    for (size_t i = 0; i < nb; i++) sumsq += (double)out[i] * out[i];
    if (sumsq > 0) {
        double inv = 1.0 / sqrt(sumsq);
        for (size_t i = 0; i < nb; i++) out[i] = (float)(out[i] * inv);
    }
}

void sn_features(const char *text, size_t len, float *out, size_t n)
{
    const unsigned char *s = (const unsigned char *)text;
    counts c;
    scan(s, len, &c);
    float cues[SN_FEATURE_CUES];
    for (int i = 0; i < SN_FEATURE_CUES; i++) cues[i] = squash(c.slot[i]);
    cues[SN_CUE_LENGTH] = capped(log2_linear(1.0 + (double)len) / 16.0);
    cues[SN_CUE_SENTENCES] = squash(c.sentences);
    cues[SN_CUE_WORDS] = capped(log2_linear(1.0 + (double)c.words) / 12.0);
    size_t ncues = n < SN_FEATURE_CUES ? n : SN_FEATURE_CUES;
    memcpy(out, cues, ncues * sizeof(float));
    if (n > SN_FEATURE_CUES) fill_ngrams(s, len, out + SN_FEATURE_CUES, n - SN_FEATURE_CUES);
}

void sn_cue_scores(const char *text, size_t len, float *out)
{
    counts c;
    scan((const unsigned char *)text, len, &c);
    out[SN_DOMAIN_REASONING] = (float)c.slot[SN_CUE_REASONING_WORDS];
    out[SN_DOMAIN_CODING] = (float)(c.slot[SN_CUE_CODING_WORDS] + c.slot[SN_CUE_CODE_SYMBOLS]);
    out[SN_DOMAIN_LANGUAGE] = (float)c.slot[SN_CUE_LANGUAGE_WORDS];
    out[SN_DOMAIN_MATHEMATICS] = (float)(c.slot[SN_CUE_NUMBERS] + c.slot[SN_CUE_OPERATORS]);
    out[SN_DOMAIN_TOOL_USE] = (float)c.slot[SN_CUE_TOOL_WORDS];
    out[SN_DOMAIN_CONTEXT] =
        (float)(c.slot[SN_CUE_CONTEXT_WORDS] + (c.sentences > 1 ? c.sentences - 1 : 0));
}
