/* synaptic.mlp: one sn_mlp living entirely inside its userdata (weights,
 * activations and scratch in one lua_newuserdatauv block), so there is
 * nothing to free and no __gc; plus the module functions features() and
 * cue_scores(). Layers are numbered 1..k in Lua, 0..k-1 in the core. */
#include "lua/lsn.h"

#include <math.h>
#include <string.h>

#include "nn/sn_features.h"
#include "nn/sn_nn.h"

static const char *const loss_names[] = { "mse", "softmax_ce", NULL };

sn_mlp *lsn_check_mlp(lua_State *L, int idx)
{
    return luaL_checkudata(L, idx, LSN_MLP);
}

/* Values at idx (floats or table) that must number exactly `want` and all
 * be finite: the check is here, at the boundary, so the core never sees a
 * NaN. */
static const float *check_vector(lua_State *L, int idx, size_t want, const char *fn, const char *what)
{
    size_t n, bad;
    const float *x = lsn_check_floats(L, idx, &n);
    if (n != want)
        luaL_error(L, "%s: %s has %I values, expected %I", fn, what, (lua_Integer)n, (lua_Integer)want);
    if (!sn_all_finite(x, n, &bad))
        luaL_error(L, "%s: %s value %I is not finite", fn, what, (lua_Integer)bad + 1);
    return x;
}

static unsigned check_layer(lua_State *L, sn_mlp *m, int idx)
{
    lua_Integer i = luaL_checkinteger(L, idx);
    unsigned k = sn_mlp_layers(m);
    if (i < 1 || i > (lua_Integer)k)
        luaL_argerror(L, idx, lua_pushfstring(L, "layer %I out of range (1..%d)", i, (int)k));
    return (unsigned)(i - 1);
}

static lsn_floats *copy_floats(lua_State *L, const float *x, size_t n)
{
    lsn_floats *f = lsn_floats_new(L, n);
    memcpy(f->data, x, n * sizeof(float));
    return f;
}

int lsn_mlp_new(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_Integer seed = luaL_checkinteger(L, 2);
    lua_Integer count = luaL_len(L, 1);
    if (count < (lua_Integer)SN_MLP_MIN_SIZES || count > (lua_Integer)SN_MLP_MAX_SIZES)
        return luaL_argerror(L, 1, lua_pushfstring(L, "%I layer sizes (need %d to %d)", count,
                                                   (int)SN_MLP_MIN_SIZES, (int)SN_MLP_MAX_SIZES));
    unsigned sizes[SN_MLP_MAX_SIZES];
    for (lua_Integer i = 0; i < count; i++) {
        lua_geti(L, 1, i + 1);
        int isint;
        lua_Integer v = lua_tointegerx(L, -1, &isint);
        lua_pop(L, 1);
        if (!isint) return luaL_argerror(L, 1, lua_pushfstring(L, "layer size %I is not an integer", i + 1));
        if (v < 1 || v > (lua_Integer)SN_MLP_MAX_WIDTH)
            return luaL_argerror(L, 1, lua_pushfstring(L, "layer size %I is %I (need 1 to %d)", i + 1, v,
                                                       (int)SN_MLP_MAX_WIDTH));
        sizes[i] = (unsigned)v;
    }
    /* Created and initialised in one step: there is no half-made state a
     * memory error could leave behind, since the block holds everything. */
    void *mem = lua_newuserdatauv(L, sn_mlp_bytes(sizes, (size_t)count), 0);
    sn_mlp_init(mem, sizes, (size_t)count, (uint64_t)seed);
    luaL_setmetatable(L, LSN_MLP);
    return 1;
}

/* mlp:forward(input [, out]) -> floats. Passing the previous result as
 * `out` reuses it instead of allocating a new array per call. */
static int l_mlp_forward(lua_State *L)
{
    sn_mlp *m = lsn_check_mlp(L, 1);
    size_t nk = sn_mlp_outputs(m);
    lsn_floats *out = NULL;
    /* out is looked at before the input: a table input is converted to a
     * floats pushed on the stack, which would otherwise sit at index 3 */
    if (!lua_isnoneornil(L, 3)) {
        out = luaL_checkudata(L, 3, LSN_FLOATS);
        if (out->n != nk)
            luaL_argerror(L, 3, lua_pushfstring(L, "out has %I values, the output layer %I", (lua_Integer)out->n,
                                                (lua_Integer)nk));
    }
    const float *in = check_vector(L, 2, sn_mlp_inputs(m), "mlp:forward", "input");
    if (out) lua_pushvalue(L, 3);
    else out = lsn_floats_new(L, nk);
    memcpy(out->data, sn_mlp_forward(m, in), nk * sizeof(float));
    return 1;
}

/* mlp:train(input, target, lr [, loss [, offset]]) -> loss before the update */
static int l_mlp_train(lua_State *L)
{
    lua_settop(L, 6);   /* converted tables are pushed above the arguments */
    sn_mlp *m = lsn_check_mlp(L, 1);
    lua_Number lr = luaL_checknumber(L, 4);
    sn_loss loss = (sn_loss)luaL_checkoption(L, 5, "mse", loss_names);
    luaL_argcheck(L, isfinite(lr) && lr > 0 && (float)lr > 0 && isfinite((float)lr), 4,
                  "learning rate must be finite and > 0");
    size_t nk = sn_mlp_outputs(m);
    sn_target t = { NULL, 0, 0, NULL };
    if (!lua_isnil(L, 6)) t.offset = check_vector(L, 6, nk, "mlp:train", "offset");
    if (lua_type(L, 3) == LUA_TNUMBER) {
        int isint;
        lua_Integer c = lua_tointegerx(L, 3, &isint);
        luaL_argcheck(L, isint, 3, "class index must be an integer");
        luaL_argcheck(L, loss == SN_LOSS_SOFTMAX_CE, 3, "mse needs a target of output values, not a class index");
        if (c < 1 || c > (lua_Integer)nk)
            luaL_argerror(L, 3, lua_pushfstring(L, "class %I out of range (1..%I)", c, (lua_Integer)nk));
        t.cls = (size_t)(c - 1);
    } else {
        t.values = check_vector(L, 3, nk, "mlp:train", "target");
        t.n = nk;
    }
    const float *in = check_vector(L, 2, sn_mlp_inputs(m), "mlp:train", "input");
    double value;
    sn_err e;
    int rc = sn_mlp_train(m, in, &t, loss, (float)lr, &value, &e);
    if (rc) return lsn_result(L, "mlp:train", rc, &e);
    lua_pushnumber(L, value);
    return 1;
}

static int l_mlp_sizes(lua_State *L)
{
    sn_mlp *m = lsn_check_mlp(L, 1);
    lua_createtable(L, (int)m->count, 0);
    for (unsigned i = 0; i < m->count; i++) {
        lua_pushinteger(L, m->sizes[i]);
        lua_rawseti(L, -2, i + 1);
    }
    return 1;
}

static int l_mlp_layer_count(lua_State *L)
{
    lua_pushinteger(L, sn_mlp_layers(lsn_check_mlp(L, 1)));
    return 1;
}

/* mlp:layer_shape(i) -> out, in: the stored shape of layer i's weights */
static int l_mlp_layer_shape(lua_State *L)
{
    sn_mlp *m = lsn_check_mlp(L, 1);
    unsigned l = check_layer(L, m, 2);
    lua_pushinteger(L, m->sizes[l + 1]);
    lua_pushinteger(L, m->sizes[l]);
    return 2;
}

static int l_mlp_parameter_count(lua_State *L)
{
    lua_pushinteger(L, (lua_Integer)lsn_check_mlp(L, 1)->params);
    return 1;
}

/* mlp:get_layer(i) -> weights [out][in], biases [out]: copies, so changing
 * them does not change the net */
static int l_mlp_get_layer(lua_State *L)
{
    sn_mlp *m = lsn_check_mlp(L, 1);
    unsigned l = check_layer(L, m, 2);
    size_t n_in = m->sizes[l], n_out = m->sizes[l + 1];
    copy_floats(L, m->w[l], n_out * n_in);
    copy_floats(L, m->b[l], n_out);
    return 2;
}

static int l_mlp_set_layer(lua_State *L)
{
    sn_mlp *m = lsn_check_mlp(L, 1);
    unsigned l = check_layer(L, m, 2);
    size_t nw, nb;
    const float *w = lsn_check_floats(L, 3, &nw);
    const float *b = lsn_check_floats(L, 4, &nb);
    sn_err e;
    int rc = sn_mlp_set_layer(m, l, w, nw, b, nb, &e);
    if (rc) return lsn_result(L, "mlp:set_layer", rc, &e);
    lua_settop(L, 1);
    return 1;
}

static int l_mlp_dirty_layers(lua_State *L)
{
    sn_mlp *m = lsn_check_mlp(L, 1);
    lua_newtable(L);
    lua_Integer n = 0;
    for (unsigned l = 0; l < sn_mlp_layers(m); l++)
        if (m->dirty & (UINT32_C(1) << l)) {
            lua_pushinteger(L, l + 1);
            lua_rawseti(L, -2, ++n);
        }
    return 1;
}

/* mlp:mark_clean([i]): layer i, or every layer, is now saved */
static int l_mlp_mark_clean(lua_State *L)
{
    sn_mlp *m = lsn_check_mlp(L, 1);
    if (lua_isnoneornil(L, 2)) m->dirty = 0;
    else m->dirty &= ~(UINT32_C(1) << check_layer(L, m, 2));
    lua_settop(L, 1);
    return 1;
}

static int l_mlp_softmax(lua_State *L)
{
    lsn_check_mlp(L, 1);
    size_t n, bad;
    const float *x = lsn_check_floats(L, 2, &n);
    if (!sn_all_finite(x, n, &bad)) luaL_error(L, "mlp:softmax: value %I is not finite", (lua_Integer)bad + 1);
    lsn_floats *out = lsn_floats_new(L, n);
    sn_softmax(x, out->data, n);
    return 1;
}

static int l_mlp_tostring(lua_State *L)
{
    sn_mlp *m = lsn_check_mlp(L, 1);
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    luaL_addstring(&b, LSN_MLP "(");
    for (unsigned i = 0; i < m->count; i++) {
        lua_pushfstring(L, i ? "-%d" : "%d", (int)m->sizes[i]);
        luaL_addvalue(&b);
    }
    luaL_addchar(&b, ')');
    luaL_pushresult(&b);
    return 1;
}

/* synaptic.features(text, n) -> floats(n) */
int lsn_features(lua_State *L)
{
    size_t len;
    const char *text = luaL_checklstring(L, 1, &len);
    lua_Integer n = luaL_checkinteger(L, 2);
    if (n < 1 || n > (lua_Integer)SN_FEATURES_MAX)
        luaL_argerror(L, 2, lua_pushfstring(L, "size %I out of range (1..%d)", n, (int)SN_FEATURES_MAX));
    lsn_floats *f = lsn_floats_new(L, (size_t)n);
    sn_features(text, len, f->data, (size_t)n);
    return 1;
}

/* synaptic.cue_scores(text) -> {reasoning=, coding=, language=,
 * mathematics=, tool_use=, context=} */
int lsn_cue_scores(lua_State *L)
{
    size_t len;
    const char *text = luaL_checklstring(L, 1, &len);
    float s[SN_DOMAIN_COUNT];
    sn_cue_scores(text, len, s);
    lua_createtable(L, 0, SN_DOMAIN_COUNT);
    for (int d = 0; d < SN_DOMAIN_COUNT; d++) {
        lua_pushnumber(L, s[d]);
        lua_setfield(L, -2, sn_domain_name(d));
    }
    return 1;
}

void lsn_mlp_register(lua_State *L)
{
    static const luaL_Reg methods[] = {
        { "forward", l_mlp_forward },
        { "train", l_mlp_train },
        { "sizes", l_mlp_sizes },
        { "layer_count", l_mlp_layer_count },
        { "layer_shape", l_mlp_layer_shape },
        { "parameter_count", l_mlp_parameter_count },
        { "get_layer", l_mlp_get_layer },
        { "set_layer", l_mlp_set_layer },
        { "dirty_layers", l_mlp_dirty_layers },
        { "mark_clean", l_mlp_mark_clean },
        { "softmax", l_mlp_softmax },
        { NULL, NULL },
    };
    static const luaL_Reg meta[] = {
        { "__tostring", l_mlp_tostring },
        { NULL, NULL },
    };
    lsn_newclass(L, LSN_MLP, methods, meta);
}
