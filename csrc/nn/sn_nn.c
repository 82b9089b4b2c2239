/* The MLP kernels. The inner loops run over `in`, contiguous in both the
 * weight row and the activation vector. The dot product is written with
 * eight independent partial sums: gcc -O2 does not vectorise a plain float
 * reduction (it may not reorder the additions), but it does turn these
 * eight into two SSE vectors (measured: 6.2 us instead of 30 us for a
 * 128-256-128-64 forward). The summation order is fixed in the source, so
 * a vectorised and a scalar build give the same bits. */
#include "nn/sn_nn.h"

#include <math.h>
#include <string.h>

#include "base/sn_rand.h"

/* Each array starts on a 64-byte boundary relative to the block, so rows of
 * different layers never share a cache line. */
#define ALIGN_FLOATS 16u

static size_t round_up(size_t n)
{
    return (n + ALIGN_FLOATS - 1) / ALIGN_FLOATS * ALIGN_FLOATS;
}

int sn_mlp_check_sizes(const unsigned *sizes, size_t count, sn_err *e)
{
    if (count < SN_MLP_MIN_SIZES || count > SN_MLP_MAX_SIZES)
        return sn_fail(e, SN_EARG, "%zu layer sizes (need %u to %u)", count, SN_MLP_MIN_SIZES,
                       SN_MLP_MAX_SIZES);
    for (size_t i = 0; i < count; i++)
        if (sizes[i] < 1 || sizes[i] > SN_MLP_MAX_WIDTH)
            return sn_fail(e, SN_EARG, "layer size %zu is %u (need 1 to %u)", i + 1, sizes[i],
                           SN_MLP_MAX_WIDTH);
    return SN_OK;
}

/* Offsets (in floats from data[]) of every array, computed once for both
 * sizing and layout so the two cannot disagree. */
static size_t layout(sn_mlp *m, const unsigned *sizes, size_t count)
{
    size_t off = 0;
    for (size_t l = 0; l + 1 < count; l++) {
        size_t in = sizes[l], out = sizes[l + 1];
        if (m) m->w[l] = m->data + off;
        off += round_up(out * in);
        if (m) m->b[l] = m->data + off;
        off += round_up(out);
    }
    for (size_t i = 0; i < count; i++) {
        if (m) m->act[i] = m->data + off;
        off += round_up(sizes[i]);
    }
    for (size_t i = 1; i < count; i++) {
        if (m) m->delta[i] = m->data + off;
        off += round_up(sizes[i]);
    }
    if (m) m->probs = m->data + off;
    off += round_up(sizes[count - 1]);
    return off;
}

size_t sn_mlp_bytes(const unsigned *sizes, size_t count)
{
    return sizeof(sn_mlp) + layout(NULL, sizes, count) * sizeof(float);
}

sn_mlp *sn_mlp_init(void *mem, const unsigned *sizes, size_t count, uint64_t seed)
{
    sn_mlp *m = mem;
    memset(m, 0, sizeof *m);
    m->count = (unsigned)count;
    memcpy(m->sizes, sizes, count * sizeof *sizes);
    size_t total = layout(m, sizes, count);
    memset(m->data, 0, total * sizeof(float));
    sn_rand r;
    sn_rand_seed(&r, seed);
    for (unsigned l = 0; l + 1 < m->count; l++) {
        size_t in = sizes[l], out = sizes[l + 1];
        double limit = sqrt(6.0 / (double)(in + out));
        for (size_t i = 0; i < out * in; i++) m->w[l][i] = sn_rand_symmetric(&r, limit);
        m->params += out * in + out;
    }
    m->dirty = (UINT32_C(1) << (m->count - 1)) - 1;
    return m;
}

unsigned sn_mlp_layers(const sn_mlp *m)
{
    return m->count - 1;
}

unsigned sn_mlp_inputs(const sn_mlp *m)
{
    return m->sizes[0];
}

unsigned sn_mlp_outputs(const sn_mlp *m)
{
    return m->sizes[m->count - 1];
}

static float dot(const float *a, const float *b, size_t n)
{
    float s0 = 0, s1 = 0, s2 = 0, s3 = 0, s4 = 0, s5 = 0, s6 = 0, s7 = 0;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        s0 += a[i + 0] * b[i + 0];
        s1 += a[i + 1] * b[i + 1];
        s2 += a[i + 2] * b[i + 2];
        s3 += a[i + 3] * b[i + 3];
        s4 += a[i + 4] * b[i + 4];
        s5 += a[i + 5] * b[i + 5];
        s6 += a[i + 6] * b[i + 6];
        s7 += a[i + 7] * b[i + 7];
    }
    float s = ((s0 + s4) + (s1 + s5)) + ((s2 + s6) + (s3 + s7));
    for (; i < n; i++) s += a[i] * b[i];
    return s;
}

/* y += g * x. restrict: the callers never pass overlapping arrays, and
 * without it gcc adds a runtime overlap check around the vector loop. */
static void axpy(float *restrict y, const float *restrict x, float g, size_t n)
{
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (size_t j = 0; j < 8; j++) y[i + j] += g * x[i + j];
    for (; i < n; i++) y[i] += g * x[i];
}

static float sigmoid(float z)
{
    /* expf(-z) overflows to inf for z < -88: the result is then exactly
     * 0, never NaN. */
    return 1.0f / (1.0f + expf(-z));
}

const float *sn_mlp_forward(sn_mlp *m, const float *in)
{
    unsigned layers = m->count - 1;
    memcpy(m->act[0], in, m->sizes[0] * sizeof(float));   /* kept for backprop */
    for (unsigned l = 0; l < layers; l++) {
        size_t n_in = m->sizes[l], n_out = m->sizes[l + 1];
        const float *x = m->act[l], *w = m->w[l], *b = m->b[l];
        float *y = m->act[l + 1];
        for (size_t o = 0; o < n_out; o++) y[o] = dot(w + o * n_in, x, n_in) + b[o];
        if (l + 1 < layers)
            for (size_t o = 0; o < n_out; o++) y[o] = sigmoid(y[o]);
    }
    return m->act[layers];
}

void sn_softmax(const float *x, float *out, size_t n)
{
    if (n == 0) return;
    float max = x[0];
    for (size_t i = 1; i < n; i++)
        if (x[i] > max) max = x[i];
    double sum = 0;
    for (size_t i = 0; i < n; i++) {
        out[i] = expf(x[i] - max);
        sum += out[i];
    }
    /* sum >= 1: the max term is exp(0) */
    for (size_t i = 0; i < n; i++) out[i] = (float)(out[i] / sum);
}

int sn_all_finite(const float *x, size_t n, size_t *bad_index)
{
    for (size_t i = 0; i < n; i++)
        if (!isfinite(x[i])) {
            if (bad_index) *bad_index = i;
            return 0;
        }
    return 1;
}

int sn_loss_from_name(const char *name, sn_loss *out)
{
    if (strcmp(name, "mse") == 0) *out = SN_LOSS_MSE;
    else if (strcmp(name, "softmax_ce") == 0) *out = SN_LOSS_SOFTMAX_CE;
    else return -1;
    return 0;
}

static int check_target(const sn_mlp *m, const sn_target *t, sn_loss loss, double *mass, sn_err *e)
{
    size_t nk = sn_mlp_outputs(m), bad;
    if (t->offset && loss != SN_LOSS_SOFTMAX_CE)
        return sn_fail(e, SN_EARG, "a logit offset only applies to softmax_ce");
    if (t->offset && !sn_all_finite(t->offset, nk, &bad))
        return sn_fail(e, SN_EARG, "logit offset %zu is not finite", bad + 1);
    if (!t->values) {
        if (loss != SN_LOSS_SOFTMAX_CE) return sn_fail(e, SN_EARG, "mse needs a target vector, not a class");
        if (t->cls >= nk) return sn_fail(e, SN_EARG, "target class %zu out of range (1..%zu)", t->cls + 1, nk);
        *mass = 1;
        return SN_OK;
    }
    if (t->n != nk) return sn_fail(e, SN_EARG, "target has %zu values, the output layer %zu", t->n, nk);
    if (!sn_all_finite(t->values, t->n, &bad))
        return sn_fail(e, SN_EARG, "target value %zu is not finite", bad + 1);
    *mass = 0;
    if (loss == SN_LOSS_SOFTMAX_CE) {
        for (size_t i = 0; i < nk; i++) {
            if (t->values[i] < 0) return sn_fail(e, SN_EARG, "target value %zu is negative", i + 1);
            *mass += t->values[i];
        }
        if (!(*mass > 0)) return sn_fail(e, SN_EARG, "target distribution sums to 0");
    }
    return SN_OK;
}

/* Loss of the current output, and its gradient with respect to the output
 * pre-activations written to delta[k]. */
static double output_delta(sn_mlp *m, const sn_target *t, sn_loss loss, double mass)
{
    unsigned k = m->count - 1;
    size_t nk = m->sizes[k];
    const float *y = m->act[k];
    float *d = m->delta[k];
    double sum = 0;
    if (loss == SN_LOSS_MSE) {
        for (size_t j = 0; j < nk; j++) {
            double diff = (double)y[j] - t->values[j];
            sum += diff * diff;
            d[j] = (float)(diff / (double)nk);
        }
        return 0.5 * sum / (double)nk;
    }
    /* Cross-entropy through log-sum-exp rather than log(softmax): exact
     * for confident outputs where a probability rounds to 0. A logit
     * offset (a fixed prior such as the router's keyword cues) is added
     * before the softmax, so the net learns what the prior lacks. */
    const float *z = y;
    if (t->offset) {
        for (size_t j = 0; j < nk; j++) m->probs[j] = y[j] + t->offset[j];
        z = m->probs;
    }
    float max = z[0];
    for (size_t j = 1; j < nk; j++)
        if (z[j] > max) max = z[j];
    double s = 0;
    for (size_t j = 0; j < nk; j++) s += exp((double)z[j] - max);
    double lse = max + log(s);
    if (!t->values) {
        sum = lse - z[t->cls];
    } else {
        for (size_t j = 0; j < nk; j++) sum += t->values[j] * (lse - z[j]);
    }
    sn_softmax(z, m->probs, nk);
    if (!t->values) {
        for (size_t j = 0; j < nk; j++) d[j] = m->probs[j];
        d[t->cls] -= 1.0f;
        return sum;
    }
    /* For a target of total mass M the gradient is M * p - t; it is p - t
     * for a proper distribution. */
    for (size_t j = 0; j < nk; j++) d[j] = (float)(mass * m->probs[j] - t->values[j]);
    return sum;
}

static float max_abs(const float *x, size_t n)
{
    float mx = 0;
    for (size_t i = 0; i < n; i++) {
        float a = fabsf(x[i]);
        if (a > mx) mx = a;
    }
    return mx;
}

int sn_mlp_train(sn_mlp *m, const float *in, const sn_target *t, sn_loss loss, float lr,
                 double *loss_out, sn_err *e)
{
    double mass = 0;
    if (!(isfinite(lr) && lr > 0)) return sn_fail(e, SN_EARG, "learning rate must be finite and > 0");
    int rc = check_target(m, t, loss, &mass, e);
    if (rc) return rc;
    sn_mlp_forward(m, in);
    double value = output_delta(m, t, loss, mass);
    if (!isfinite(value)) return sn_fail(e, SN_EARG, "loss is not finite (the weights have diverged)");

    /* All deltas are computed from the old weights before any weight
     * changes, so a failure below leaves the net untouched. */
    unsigned layers = m->count - 1;
    for (unsigned i = layers - 1; i >= 1; i--) {
        size_t n = m->sizes[i], n_out = m->sizes[i + 1];
        float *d = m->delta[i];
        const float *a = m->act[i], *w = m->w[i], *dn = m->delta[i + 1];
        memset(d, 0, n * sizeof(float));
        for (size_t o = 0; o < n_out; o++) axpy(d, w + o * n, dn[o], n);
        for (size_t j = 0; j < n; j++) d[j] *= a[j] * (1.0f - a[j]);
    }
    for (unsigned l = 0; l < layers; l++) {
        size_t n_out = m->sizes[l + 1];
        if (!sn_all_finite(m->delta[l + 1], n_out, NULL))
            return sn_fail(e, SN_EARG, "gradient of layer %u is not finite", l + 1);
        double a = max_abs(m->act[l], m->sizes[l]);
        double step = (double)lr * max_abs(m->delta[l + 1], n_out) * (a > 1 ? a : 1);
        if (step > SN_MLP_MAX_STEP)
            return sn_fail(e, SN_EARG, "update of layer %u too large (%g); lower the learning rate", l + 1,
                           step);
    }

    for (unsigned l = 0; l < layers; l++) {
        size_t n_in = m->sizes[l], n_out = m->sizes[l + 1];
        const float *a = m->act[l], *d = m->delta[l + 1];
        float *w = m->w[l], *b = m->b[l];
        for (size_t o = 0; o < n_out; o++) {
            float g = -lr * d[o];
            axpy(w + o * n_in, a, g, n_in);
            b[o] += g;
        }
    }
    m->dirty |= (UINT32_C(1) << layers) - 1;
    *loss_out = value;
    return SN_OK;
}

int sn_mlp_set_layer(sn_mlp *m, unsigned l, const float *w, size_t nw, const float *b, size_t nb,
                     sn_err *e)
{
    if (l >= m->count - 1) return sn_fail(e, SN_EARG, "layer %u out of range (1..%u)", l + 1, m->count - 1);
    size_t n_in = m->sizes[l], n_out = m->sizes[l + 1], bad;
    if (nw != n_out * n_in)
        return sn_fail(e, SN_EARG, "layer %u needs %zu weights (%zu x %zu), got %zu", l + 1, n_out * n_in,
                       n_out, n_in, nw);
    if (nb != n_out) return sn_fail(e, SN_EARG, "layer %u needs %zu biases, got %zu", l + 1, n_out, nb);
    if (!sn_all_finite(w, nw, &bad)) return sn_fail(e, SN_EARG, "weight %zu is not finite", bad + 1);
    if (!sn_all_finite(b, nb, &bad)) return sn_fail(e, SN_EARG, "bias %zu is not finite", bad + 1);
    memcpy(m->w[l], w, nw * sizeof(float));
    memcpy(m->b[l], b, nb * sizeof(float));
    m->dirty |= UINT32_C(1) << l;
    return SN_OK;
}
