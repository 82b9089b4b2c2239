/* sn_features: text -> a fixed-length float32 vector for an expert's input
 * layer, and keyword cue scores for the router. Pure integer and IEEE
 * arithmetic (no libm beyond sqrt, which IEEE rounds exactly), so the same
 * text gives the same bits on every machine.
 *
 * Text is read as bytes; ASCII letters are lowercased, other bytes (UTF-8
 * included) are kept as they are. A word is a maximal run of ASCII letters,
 * digits, '_' or bytes >= 0x80. A keyword of 4 or more letters also matches
 * words it begins ("reason" matches "reasoning"); shorter ones ("if",
 * "why", "def", "use", "run") must match the whole word, so "diff" is not
 * an "if".
 *
 * Domain order, used by sn_cue_scores and by every 6-way output (the gate):
 *   0 reasoning, 1 coding, 2 language, 3 mathematics, 4 tool_use, 5 context
 *
 * Keywords per domain:
 *   reasoning   if then because why explain reason
 *   coding      function def code debug implement program
 *               (plus the symbols { } ; counted separately)
 *   language    translate language grammar word
 *   mathematics calculate solve equation math (plus numbers and operators)
 *   tool_use    use uses used using tool run runs running execute
 *   context     context remember previous earlier history conversation
 *
 * Feature layout for features(text, n): the first min(n, SN_FEATURE_CUES)
 * slots are the cue block below; the remaining n - 12 slots are signed,
 * hashed character 3-grams (FNV-1a of each 3 bytes of " text " with
 * whitespace runs collapsed to one space; the hash picks the bucket and its
 * top bit the sign, so collisions cancel on average), scaled to unit L2
 * norm. Counts in the cue block are squashed as c / (1 + c) into [0, 1). */
#ifndef SN_FEATURES_H
#define SN_FEATURES_H

#include "base/sn_types.h"

enum {
    SN_DOMAIN_REASONING = 0,
    SN_DOMAIN_CODING,
    SN_DOMAIN_LANGUAGE,
    SN_DOMAIN_MATHEMATICS,
    SN_DOMAIN_TOOL_USE,
    SN_DOMAIN_CONTEXT,
    SN_DOMAIN_COUNT
};

/* Cue block slots, in order. */
enum {
    SN_CUE_REASONING_WORDS = 0,
    SN_CUE_CODING_WORDS,
    SN_CUE_CODE_SYMBOLS,      /* { } ; */
    SN_CUE_LANGUAGE_WORDS,
    SN_CUE_NUMBERS,           /* maximal digit runs */
    SN_CUE_OPERATORS,         /* + - * / = ^ (not - or / inside a word) and
                                 the mathematics keywords */
    SN_CUE_TOOL_WORDS,
    SN_CUE_CONTEXT_WORDS,
    SN_CUE_LENGTH,            /* log2(1 + bytes) / 16, capped at 1 */
    SN_CUE_SENTENCES,         /* squashed sentence count */
    SN_CUE_QUESTIONS,         /* squashed count of '?' */
    SN_CUE_WORDS,             /* log2(1 + words) / 12, capped at 1 */
    SN_FEATURE_CUES           /* 12 */
};

#define SN_FEATURES_MAX 4096u   /* the widest input layer sn_nn allows */

SN_HIDDEN const char *sn_domain_name(int domain);

/* out[0..n-1]; n must be 1..SN_FEATURES_MAX. */
SN_HIDDEN void sn_features(const char *text, size_t len, float *out, size_t n);

/* Keyword hit counts per domain (SN_DOMAIN_COUNT values, in domain order):
 * reasoning, coding, language and tool_use count their keywords (coding
 * also its symbols); mathematics counts numbers, operators and its
 * keywords; context counts its keywords plus each sentence after the
 * first. */
SN_HIDDEN void sn_cue_scores(const char *text, size_t len, float *out);

#endif
