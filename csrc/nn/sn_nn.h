/* sn_nn: a small float32 multilayer perceptron, the numeric core of one
 * micro-expert (and of the router's gate).
 *
 * sizes[0..count-1] are the layer widths n0..nk; weight layer l (0-based
 * here, 1-based in Lua) maps sizes[l] -> sizes[l+1]. Hidden layers use the
 * logistic sigmoid, the output layer is linear. Each weight layer keeps
 * its weights row-major [out][in] (shape {out, in}, the layout stored to
 * disk) and its biases [out].
 *
 * The whole net (header, parameters, activations, backprop deltas) lives in
 * one caller-provided block of sn_mlp_bytes() bytes, so a binding can put it
 * in one userdata: no malloc per call and nothing to free. The block must
 * not move once initialised (Lua userdata never do): the header points into
 * it. */
#ifndef SN_NN_H
#define SN_NN_H

#include "base/sn_types.h"

#define SN_MLP_MIN_SIZES 2u
#define SN_MLP_MAX_SIZES 8u        /* n0..n7: at most 7 weight layers */
#define SN_MLP_MAX_WIDTH 4096u     /* units in one layer */
/* A learning-rate-times-gradient step bigger than this is refused before
 * anything changes: it cannot push a finite float32 weight to infinity
 * (half an ulp at FLT_MAX is about 1e31), so training never writes a
 * non-finite weight that the store would then refuse. */
#define SN_MLP_MAX_STEP 1e30

typedef enum sn_loss {
    SN_LOSS_MSE = 0,        /* 0.5 * sum (y - t)^2 / n_k */
    SN_LOSS_SOFTMAX_CE      /* -sum t log softmax(y), t a class or a distribution */
} sn_loss;

typedef struct sn_mlp {
    unsigned count;                       /* number of sizes, 2..8 */
    unsigned sizes[SN_MLP_MAX_SIZES];
    uint32_t dirty;                       /* bit l: layer l changed since marked clean */
    size_t params;                        /* weights + biases, all layers */
    float *w[SN_MLP_MAX_SIZES - 1];       /* [out][in] */
    float *b[SN_MLP_MAX_SIZES - 1];       /* [out] */
    float *act[SN_MLP_MAX_SIZES];         /* act[0] = input copy, act[count-1] = output */
    float *delta[SN_MLP_MAX_SIZES];       /* dLoss/d pre-activation of each layer; [0] unused */
    float *probs;                         /* softmax of the output, for softmax_ce */
    float data[];
} sn_mlp;

/* Training target: a vector (mse, or a distribution for softmax_ce) or a
 * class index 0..n_k-1 (softmax_ce only; values is NULL). */
typedef struct sn_target {
    const float *values;
    size_t n;
    size_t cls;
    const float *offset;   /* optional: added to the outputs before softmax_ce */
} sn_target;

/* SN_EARG with a message when count or a size is out of bounds. */
SN_HIDDEN int sn_mlp_check_sizes(const unsigned *sizes, size_t count, sn_err *e);
/* Bytes of the block for these (checked) sizes. */
SN_HIDDEN size_t sn_mlp_bytes(const unsigned *sizes, size_t count);
/* Lays the net out in mem (sn_mlp_bytes() bytes) and draws the weights
 * from seed: uniform in +-sqrt(6 / (in + out)) (Xavier/Glorot), biases 0.
 * Every layer starts dirty: none has been saved yet. */
SN_HIDDEN sn_mlp *sn_mlp_init(void *mem, const unsigned *sizes, size_t count, uint64_t seed);

SN_HIDDEN unsigned sn_mlp_layers(const sn_mlp *m);   /* weight layers: count - 1 */
SN_HIDDEN unsigned sn_mlp_inputs(const sn_mlp *m);
SN_HIDDEN unsigned sn_mlp_outputs(const sn_mlp *m);

/* in: sn_mlp_inputs() values (the caller checks they are finite). Returns
 * the net's own output buffer, valid until the next forward or train. */
SN_HIDDEN const float *sn_mlp_forward(sn_mlp *m, const float *in);

/* One SGD step: forward, backprop, update by lr. *loss is the loss before
 * the update. SN_EARG (and no weight changed) for a bad target, a
 * non-finite lr, loss or gradient, or a step too large to apply safely. */
SN_HIDDEN int sn_mlp_train(sn_mlp *m, const float *in, const sn_target *t, sn_loss loss,
                           float lr, double *loss_out, sn_err *e);

/* Replaces layer l's weights (out*in values) and biases (out values);
 * SN_EARG for a wrong count or a non-finite value, leaving the layer as it
 * was. */
SN_HIDDEN int sn_mlp_set_layer(sn_mlp *m, unsigned l, const float *w, size_t nw,
                               const float *b, size_t nb, sn_err *e);

/* Numerically stable softmax (the max is subtracted first); out may be x. */
SN_HIDDEN void sn_softmax(const float *x, float *out, size_t n);

/* 1 when all n values are finite. */
SN_HIDDEN int sn_all_finite(const float *x, size_t n, size_t *bad_index);

/* Names for the loss type ("mse", "softmax_ce"); -1 for an unknown name. */
SN_HIDDEN int sn_loss_from_name(const char *name, sn_loss *out);

#endif
