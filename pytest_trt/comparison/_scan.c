/* The comparator's inner loop in C: one pass over a float pair, every statistic at once.
 *
 * numpy needs nine array operations (each a trip through memory or cache) per chunk for what this
 * does in one read of the two arrays, and the GIL stays released for the whole call, so threads
 * scale. pytest_trt/comparison/ decides everything else (scan.py: chunks, threads, NaN/Inf classes;
 * report.py: messages) and scan.py falls back to its numpy path when this module is not built; both
 * paths give the same reports (tests/comparison/test_compare.py runs every test on both).
 *
 * scan(a, b, kinds, atol, rtol, either, detail, histogram, want) -> None | tuple
 *   a, b: 1-D C-contiguous buffers, equally long; kinds: their element types, two of 'f' (float32),
 *   'e' (float16), 'b' (bfloat16, passed as uint16) and 'd' (float64, only as "dd"). float16 and
 *   bfloat16 are widened to float32 here, block by block (exactly, as numpy does).
 *   Arithmetic is done in float32 (float64 for "dd"), in the order np.isclose uses: bound =
 *   atol + rtol*|b| ("either": max(atol, rtol*|b|)); an element fails when |a-b| > bound. No fused
 *   multiply-add (built with -ffp-contract=off), so bounds round exactly as numpy's do.
 *   Returns None when any |a-b| is not finite (NaN, Inf, or overflow): the caller classifies those.
 *   Else (max_abs, i_abs, max_rel, i_rel, budget, i_budget, mismatches, min_atol, min_rtol, first,
 *   counts): greatest |a-b|, |a-b|/|b| and |a-b|/bound with the first index of each (-1, -1 when
 *   every value was 0/0), the failing count, the smallest atol (at rtol) and rtol (at atol) that
 *   would pass the blocks that hold failures (all blocks when detail is true), the indices of the
 *   first `want` failing elements, and the |a-b| histogram by decade (bytes of int64 counts, see
 *   set_decades) or None. histogram: 0 none, 1 from the first failing element on (the blocks before
 *   it in this call are then counted too, so the counts cover the whole call), 2 every element.
 *
 * histogram(a, b, kinds) -> bytes: the decade histogram of |a-b| alone (NaN/Inf in the last bin).
 * set_decades(kind, lo, split, bins): the tables that map |a-b| to its decade, computed exactly in
 *   comparison/stats.py (see _decades there): per binary octave, the bin of its lowest decade and the bit
 *   pattern of the power of ten inside it, if any. From them set_decades derives each bin's lowest
 *   pattern, so that a block spread over few bins is counted by comparisons (see DEFINE_HISTOGRAM).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#if defined(_MSC_VER) && !defined(restrict)
#define restrict __restrict
#endif

#define BLOCK 1024   /* elements per block: indices are searched, and tolerances computed, per block */
#define LANES 16     /* independent accumulators, so that compilers vectorize without reassociating */
#define HLANES 4     /* histograms counted in turn, so that increments of one bin do not wait on each other */
#define OCTAVES32 (256 + 23)    /* decade table rows: zero, 23 subnormal octaves, 255 exponents (the last Inf/NaN) */
#define OCTAVES64 (2048 + 52)
#define MAX_BINS 640
#define MAX_WANT 64
#define GROUP 4       /* edges compared per pass over a block (see DEFINE_HISTOGRAM) */
#define MAX_EDGES 12  /* blocks spread over more bins are counted by lookups */

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__) && defined(__GLIBC__)
#define MULTIVERSION __attribute__((target_clones("avx2", "default")))
#else
#define MULTIVERSION
#endif

#if defined(__GNUC__)
#define INLINE static inline __attribute__((always_inline))   /* into each MULTIVERSION clone, vectorized for it */
#else
#define INLINE static inline
#endif

static uint32_t lo32[OCTAVES32], lo64[OCTAVES64];   /* 32-bit, so that lookups vectorize (as gathers) */
static uint32_t split32[OCTAVES32];
static uint64_t split64[OCTAVES64];
static uint32_t edge32[MAX_BINS];   /* the lowest bit pattern of each bin */
static uint64_t edge64[MAX_BINS];
static int bins32, bins64;   /* 0 until set_decades */

typedef struct {
    double max_abs, max_rel, budget, min_atol, min_rtol;
    Py_ssize_t i_abs, i_rel, i_budget, mismatches;
} Stats;

typedef struct {             /* the histogram of one call and the first failing indices found */
    Py_ssize_t *counts;      /* HLANES x bins, or NULL */
    int bins, on;
    Py_ssize_t want, found, first[MAX_WANT];
} Extras;

#define MAX_OF(x, acc) ((x) > (acc) ? (x) : (acc))   /* NaN x leaves acc: np.fmax semantics */

static inline uint32_t bits32(float x) { uint32_t u; memcpy(&u, &x, 4); return u; }
static inline uint64_t bits64(double x) { uint64_t u; memcpy(&u, &x, 8); return u; }
static inline float float_of(uint32_t u) { float x; memcpy(&x, &u, 4); return x; }

/* The histogram bin of |a-b| (sign ignored): zero, a decade, or the last bin for Inf/NaN. Branch-free,
   so that a block's keys are computed in vectors: a subnormal's row is its bit length, read from the
   exponent of its bit pattern converted to a float (exact below 2**23). */
static inline uint32_t key32(uint32_t u)
{
    uint32_t e = u >> 23;
    int32_t length = (int32_t)(bits32((float)(int32_t)(u & 0x7fffffu)) >> 23) - 126;
    uint32_t normal = 0u - (uint32_t)(e != 0), i = (normal & (e + 23)) | (~normal & (uint32_t)(length & ~(length >> 31)));
    return lo32[i] + (uint32_t)(u >= split32[i]);
}

static inline uint32_t key64(uint64_t u)
{
    uint64_t e = u >> 52;
    int64_t length = (int64_t)(bits64((double)(int64_t)(u & 0xfffffffffffffull)) >> 52) - 1022;
    uint64_t normal = 0u - (uint64_t)(e != 0), i = (normal & (e + 52)) | (~normal & (uint64_t)(length & ~(length >> 63)));
    return lo64[i] + (uint32_t)(u >= split64[i]);
}

/* float16 -> float32, exactly, in operations that vectorize (int32 lanes, selects). */
static inline float half_to_float(uint16_t h)
{
    int32_t em = h & 0x7fff;
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    float sub = (float)em * 5.9604644775390625e-08f;                     /* em * 2**-24: zero and subnormals */
    uint32_t normal = ((uint32_t)em << 13) + ((127u - 15u) << 23);       /* rebias the exponent */
    uint32_t special = ((uint32_t)em << 13) | 0x7f800000u;               /* Inf, NaN */
    uint32_t is_special = 0u - (uint32_t)(em >= 0x7c00), is_sub = 0u - (uint32_t)(em < 0x0400);   /* masks */
    uint32_t r = (special & is_special) | (normal & ~is_special);
    r = (bits32(sub) & is_sub) | (r & ~is_sub);
    return float_of(r | sign);
}

/* Block [s, s+k) of a float32-class input as float32: in place, or widened into buf. */
static inline const float *load_float(const void *p, char kind, Py_ssize_t s, Py_ssize_t k, float *restrict buf)
{
    if (kind == 'f')
        return (const float *)p + s;
    const uint16_t *h = (const uint16_t *)p + s;
    if (kind == 'e')
        for (Py_ssize_t j = 0; j < k; j++) buf[j] = half_to_float(h[j]);
    else
        for (Py_ssize_t j = 0; j < k; j++) buf[j] = float_of((uint32_t)h[j] << 16);
    return buf;
}

static inline const double *load_double(const void *p, char kind, Py_ssize_t s, Py_ssize_t k, double *restrict buf)
{
    (void)kind; (void)k; (void)buf;
    return (const double *)p + s;
}

/* The histogram of one block. The bin rises with the bit pattern u of |a-b| (sign cleared), so when
   the block's nonzero patterns fall in few bins, from..last, the counts follow from comparisons with
   the lowest pattern of each (edge), made in vectors, several edges per pass: c_i = #(u >= edge[from+i])
   counts bin 0 (zero) k - c_0, bin from+i c_i - c_(i+1). No per-element lookup or increment.
   Blocks spread over more bins take one lookup and one increment per element. */
#define DEFINE_HISTOGRAM(NAME, T, U, S, MASK, BITS, LOAD, KEY, EDGE)                                   \
INLINE void NAME(const T *restrict A, const T *restrict B, Py_ssize_t k, Py_ssize_t *restrict h, int bins) \
{                                                                                                     \
    U u[BLOCK], lo = (U)-1, hi = 0;   /* lo: the smallest nonzero pattern less 1 (zero wraps above) */ \
    for (Py_ssize_t j = 0; j < k; j++) {                                                              \
        U v = BITS(A[j] - B[j]) & MASK, w = v - 1;                                                    \
        u[j] = v; lo = w < lo ? w : lo; hi = v > hi ? v : hi;                                         \
    }                                                                                                 \
    if (hi == 0) {                                                                                    \
        h[0] += k;                                                                                    \
        return;                                                                                       \
    }                                                                                                 \
    const uint32_t from = KEY(lo + 1), last = KEY(hi), edges = last - from + 1;                       \
    if (edges <= MAX_EDGES) {                                                                         \
        Py_ssize_t prev = k;                                                                          \
        for (uint32_t g = 0; g < edges; g += GROUP) {   /* GROUP edges per pass, in registers */      \
            S e[GROUP];                                                                               \
            uint32_t c[GROUP];   /* 32-bit, as wide as the patterns: the loop vectorizes */           \
            for (uint32_t t = 0; t < GROUP; t++) {   /* u >= edge as u > edge - 1; past the last: the last */ \
                e[t] = (S)EDGE[from + (g + t < edges ? g + t : edges - 1)] - 1;                       \
                c[t] = 0;                                                                             \
            }                                                                                         \
            for (Py_ssize_t j = 0; j < k; j++) {                                                      \
                const S v = (S)u[j];                                                                  \
                for (int t = 0; t < GROUP; t++)                                                       \
                    c[t] += v > e[t];                                                                 \
            }                                                                                         \
            for (uint32_t t = 0; t < GROUP && g + t < edges; t++) {                                   \
                h[g + t ? from + g + t - 1 : 0] += prev - c[t];                                       \
                prev = c[t];                                                                          \
            }                                                                                         \
        }                                                                                             \
        h[last] += prev;                                                                              \
        return;                                                                                       \
    }                                                                                                 \
    uint32_t key[BLOCK];                                                                              \
    for (Py_ssize_t j = 0; j < k; j++)                                                                \
        key[j] = KEY(u[j]);                                                                           \
    Py_ssize_t *h1 = h + bins, *h2 = h1 + bins, *h3 = h2 + bins, j = 0;                               \
    for (; j + HLANES <= k; j += HLANES) {   /* HLANES histograms: increments of one bin overlap */   \
        h[key[j]]++; h1[key[j + 1]]++; h2[key[j + 2]]++; h3[key[j + 3]]++;                            \
    }                                                                                                 \
    for (; j < k; j++)                                                                                \
        h[key[j]]++;                                                                                  \
}                                                                                                     \
MULTIVERSION static void NAME##_range(const void *a, char ka, const void *b, char kb, Py_ssize_t start, \
                                      Py_ssize_t stop, Py_ssize_t *restrict h, int bins)              \
{                                                                                                     \
    T abuf[BLOCK], bbuf[BLOCK];                                                                       \
    for (Py_ssize_t s = start; s < stop; s += BLOCK) {                                                \
        const Py_ssize_t k = stop - s < BLOCK ? stop - s : BLOCK;                                     \
        NAME(LOAD(a, ka, s, k, abuf), LOAD(b, kb, s, k, bbuf), k, h, bins);                           \
    }                                                                                                 \
}

DEFINE_HISTOGRAM(histogram_float, float, uint32_t, int32_t, 0x7fffffffu, bits32, load_float, key32, edge32)
DEFINE_HISTOGRAM(histogram_double, double, uint64_t, int64_t, 0x7fffffffffffffffull, bits64, load_double, key64, edge64)

#define DEFINE_SCAN(NAME, T, FABS, TMAX, LOAD, HIST)                                                  \
MULTIVERSION static int NAME(const void *a, char ka, const void *b, char kb, Py_ssize_t n, T atol, T rtol, \
                             int either, int detail, Extras *x, Stats *o)                             \
{                                                                                                     \
    T abuf[BLOCK], bbuf[BLOCK];                                                                       \
    for (Py_ssize_t s = 0; s < n; s += BLOCK) {                                                       \
        const Py_ssize_t k = n - s < BLOCK ? n - s : BLOCK;                                           \
        const T *A = LOAD(a, ka, s, k, abuf), *B = LOAD(b, kb, s, k, bbuf);                           \
        T dm[LANES], rm[LANES], bm[LANES];                                                            \
        Py_ssize_t bad[LANES], fails[LANES];                                                          \
        for (int l = 0; l < LANES; l++) { dm[l] = rm[l] = bm[l] = -1; bad[l] = fails[l] = 0; }        \
        Py_ssize_t j = 0;                                                                             \
        for (; j + LANES <= k; j += LANES) {                                                          \
            for (int l = 0; l < LANES; l++) {                                                         \
                T d = FABS(A[j + l] - B[j + l]), m = FABS(B[j + l]);                                  \
                T t = m * rtol;                                                                       \
                T w = either ? (t > atol ? t : atol) : t + atol;                                      \
                T r = d / m, q = d / w;                                                               \
                bad[l] += !(d <= TMAX);                                                               \
                fails[l] += d > w;                                                                    \
                dm[l] = MAX_OF(d, dm[l]);                                                             \
                rm[l] = MAX_OF(r, rm[l]);                                                             \
                bm[l] = MAX_OF(q, bm[l]);                                                             \
            }                                                                                         \
        }                                                                                             \
        for (; j < k; j++) {                                                                          \
            T d = FABS(A[j] - B[j]), m = FABS(B[j]);                                                  \
            T t = m * rtol;                                                                           \
            T w = either ? (t > atol ? t : atol) : t + atol;                                          \
            T r = d / m, q = d / w;                                                                   \
            bad[0] += !(d <= TMAX);                                                                   \
            fails[0] += d > w;                                                                        \
            dm[0] = MAX_OF(d, dm[0]);                                                                 \
            rm[0] = MAX_OF(r, rm[0]);                                                                 \
            bm[0] = MAX_OF(q, bm[0]);                                                                 \
        }                                                                                             \
        T D = -1, R = -1, Q = -1;                                                                     \
        Py_ssize_t nbad = 0, nfail = 0;                                                               \
        for (int l = 0; l < LANES; l++) {                                                             \
            D = MAX_OF(dm[l], D); R = MAX_OF(rm[l], R); Q = MAX_OF(bm[l], Q);                         \
            nbad += bad[l]; nfail += fails[l];                                                        \
        }                                                                                             \
        if (nbad)                                                                                     \
            return 0;                                                                                 \
        o->mismatches += nfail;                                                                       \
        /* The first index of a new maximum: the same expression, so the same rounding (the block's  \
           start only if a compiler rounded differently: never on x86-64 or aarch64). */            \
        if (D > o->max_abs) {                                                                         \
            for (j = 0; j < k && FABS(A[j] - B[j]) != D; j++) {}                                      \
            o->max_abs = D; o->i_abs = s + (j < k ? j : 0);                                           \
        }                                                                                             \
        if (R > o->max_rel) {                                                                         \
            for (j = 0; j < k && FABS(A[j] - B[j]) / FABS(B[j]) != R; j++) {}                         \
            o->max_rel = R; o->i_rel = s + (j < k ? j : 0);                                           \
        }                                                                                             \
        if (Q > o->budget) {                                                                          \
            for (j = 0; j < k; j++) {                                                                 \
                T d = FABS(A[j] - B[j]), t = FABS(B[j]) * rtol;                                       \
                T w = either ? (t > atol ? t : atol) : t + atol;                                      \
                if (d / w == Q) break;                                                                \
            }                                                                                         \
            o->budget = Q; o->i_budget = s + (j < k ? j : 0);                                         \
        }                                                                                             \
        if (nfail && x->found < x->want) {                                                            \
            for (j = 0; j < k && x->found < x->want; j++) {                                           \
                T d = FABS(A[j] - B[j]), t = FABS(B[j]) * rtol;                                       \
                T w = either ? (t > atol ? t : atol) : t + atol;                                      \
                if (d > w) x->first[x->found++] = s + j;                                              \
            }                                                                                         \
        }                                                                                             \
        if (x->counts && !x->on && nfail) {   /* the first failure: count the blocks before it too */ \
            x->on = 1;                                                                                \
            memset(x->counts, 0, sizeof(Py_ssize_t) * HLANES * x->bins);                              \
            HIST##_range(a, ka, b, kb, 0, s, x->counts, x->bins);                                     \
        }                                                                                             \
        if (x->on)                                                                                    \
            HIST(A, B, k, x->counts, x->bins);                                                        \
        if (nfail || detail) {                                                                        \
            /* allclose passes iff d - rtol*|b| <= atol, and iff (d - atol)/|b| <= rtol.              \
               either fails iff d > atol and d > rtol*|b|: atol must cover each d above rtol*|b|,    \
               rtol each d/|b| whose d is above atol. Lanes again, branch-free, so it vectorizes. */ \
            T na[LANES], nr[LANES];                                                                   \
            for (int l = 0; l < LANES; l++) { na[l] = (T)o->min_atol; nr[l] = (T)o->min_rtol; }       \
            for (j = 0; j < k; j += LANES) {                                                          \
                const int lanes = k - j < LANES ? (int)(k - j) : LANES;                               \
                if (either) {                                                                         \
                    for (int l = 0; l < lanes; l++) {                                                 \
                        T d = FABS(A[j + l] - B[j + l]), m = FABS(B[j + l]);                          \
                        T x_ = d > m * rtol ? d : 0, y = d > atol ? d / m : 0;                        \
                        na[l] = MAX_OF(x_, na[l]); nr[l] = MAX_OF(y, nr[l]);                          \
                    }                                                                                 \
                } else {                                                                              \
                    for (int l = 0; l < lanes; l++) {                                                 \
                        T d = FABS(A[j + l] - B[j + l]), m = FABS(B[j + l]);                          \
                        T x_ = d - m * rtol, y = (d - atol) / m;                                      \
                        na[l] = MAX_OF(x_, na[l]); nr[l] = MAX_OF(y, nr[l]);                          \
                    }                                                                                 \
                }                                                                                     \
            }                                                                                         \
            for (int l = 0; l < LANES; l++) {                                                         \
                o->min_atol = MAX_OF(na[l], o->min_atol); o->min_rtol = MAX_OF(nr[l], o->min_rtol);   \
            }                                                                                         \
        }                                                                                             \
    }                                                                                                 \
    return 1;                                                                                         \
}

DEFINE_SCAN(scan_float, float, fabsf, FLT_MAX, load_float, histogram_float)
DEFINE_SCAN(scan_double, double, fabs, DBL_MAX, load_double, histogram_double)

typedef struct {
    Py_buffer a, b;
    char ka, kb;
    int dbl;
    Py_ssize_t n;   /* elements in each buffer */
    int bins;       /* decade bins of this dtype's histogram */
} Pair;

static int
kind_size(char kind)
{
    return kind == 'f' ? 4 : kind == 'd' ? 8 : (kind == 'e' || kind == 'b') ? 2 : 0;
}

static void
release(Pair *p)
{
    PyBuffer_Release(&p->a);
    PyBuffer_Release(&p->b);
}

/* Both buffers, checked against their kinds; -1 with an exception set, else 0 (release afterwards). */
static int
get_pair(PyObject *a_obj, PyObject *b_obj, const char *kinds, Pair *p)
{
    if (strlen(kinds) != 2 || !kind_size(kinds[0]) || !kind_size(kinds[1]) || ((kinds[0] == 'd') != (kinds[1] == 'd'))) {
        PyErr_SetString(PyExc_ValueError, "kinds must be two of 'f', 'e', 'b', or \"dd\"");
        return -1;
    }
    p->ka = kinds[0];
    p->kb = kinds[1];
    p->dbl = kinds[0] == 'd';
    if (p->dbl ? !bins64 : !bins32) {
        PyErr_SetString(PyExc_RuntimeError, "set_decades() was not called for this dtype");
        return -1;
    }
    if (PyObject_GetBuffer(a_obj, &p->a, PyBUF_C_CONTIGUOUS) < 0)
        return -1;
    if (PyObject_GetBuffer(b_obj, &p->b, PyBUF_C_CONTIGUOUS) < 0) {
        PyBuffer_Release(&p->a);
        return -1;
    }
    Py_ssize_t sa = kind_size(p->ka), sb = kind_size(p->kb);
    if (p->a.len % sa || p->b.len % sb || p->a.len / sa != p->b.len / sb) {
        PyErr_SetString(PyExc_ValueError, "a and b must hold equally many elements of their kinds");
        release(p);
        return -1;
    }
    p->n = p->b.len / sb;
    p->bins = p->dbl ? bins64 : bins32;
    return 0;
}

/* HLANES histograms summed into bytes of int64 counts. */
static PyObject *
counts_bytes(const Py_ssize_t *h, int bins)
{
    PyObject *out = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)bins * 8);
    if (out == NULL)
        return NULL;
    int64_t *c = (int64_t *)PyBytes_AS_STRING(out);
    for (int i = 0; i < bins; i++) {
        int64_t sum = 0;
        for (int l = 0; l < HLANES; l++)
            sum += h[l * bins + i];
        c[i] = sum;
    }
    return out;
}

static PyObject *
scan(PyObject *self, PyObject *args)
{
    PyObject *a_obj, *b_obj;
    const char *kinds;
    double atol, rtol;
    int either, detail, hist;
    Py_ssize_t want;
    if (!PyArg_ParseTuple(args, "OOsddppin:scan", &a_obj, &b_obj, &kinds, &atol, &rtol, &either, &detail, &hist, &want))
        return NULL;
    Pair p;
    if (get_pair(a_obj, b_obj, kinds, &p) < 0)
        return NULL;
    Py_ssize_t n = p.n;
    Py_ssize_t counts[HLANES * MAX_BINS];
    Extras x;
    x.bins = p.bins;
    x.counts = hist ? counts : NULL;
    x.on = hist == 2;
    x.want = want < 0 ? 0 : want > MAX_WANT ? MAX_WANT : want;
    x.found = 0;
    if (x.on)
        memset(counts, 0, sizeof(Py_ssize_t) * HLANES * x.bins);
    Stats o = {-1, -1, -1, 0, 0, -1, -1, -1, 0};
    int finite;
    Py_BEGIN_ALLOW_THREADS
    if (p.dbl)
        finite = scan_double(p.a.buf, p.ka, p.b.buf, p.kb, n, atol, rtol, either, detail, &x, &o);
    else
        finite = scan_float(p.a.buf, p.ka, p.b.buf, p.kb, n, (float)atol, (float)rtol, either, detail, &x, &o);
    Py_END_ALLOW_THREADS
    release(&p);
    if (!finite)
        Py_RETURN_NONE;
    PyObject *first = PyTuple_New(x.found);
    if (first == NULL)
        return NULL;
    for (Py_ssize_t i = 0; i < x.found; i++) {
        PyObject *v = PyLong_FromSsize_t(x.first[i]);
        if (v == NULL) {
            Py_DECREF(first);
            return NULL;
        }
        PyTuple_SET_ITEM(first, i, v);
    }
    PyObject *histogram = x.on ? counts_bytes(counts, x.bins) : (Py_INCREF(Py_None), Py_None);
    if (histogram == NULL) {
        Py_DECREF(first);
        return NULL;
    }
    return Py_BuildValue("(dndndnnddNN)", o.max_abs, o.i_abs, o.max_rel, o.i_rel, o.budget, o.i_budget,
                         o.mismatches, o.min_atol, o.min_rtol, first, histogram);
}

static PyObject *
histogram(PyObject *self, PyObject *args)
{
    PyObject *a_obj, *b_obj;
    const char *kinds;
    if (!PyArg_ParseTuple(args, "OOs:histogram", &a_obj, &b_obj, &kinds))
        return NULL;
    Pair p;
    if (get_pair(a_obj, b_obj, kinds, &p) < 0)
        return NULL;
    Py_ssize_t n = p.n;
    Py_ssize_t counts[HLANES * MAX_BINS];
    int bins = p.bins;
    memset(counts, 0, sizeof(Py_ssize_t) * HLANES * bins);
    Py_BEGIN_ALLOW_THREADS
    if (p.dbl)
        histogram_double_range(p.a.buf, p.ka, p.b.buf, p.kb, 0, n, counts, bins);
    else
        histogram_float_range(p.a.buf, p.ka, p.b.buf, p.kb, 0, n, counts, bins);
    Py_END_ALLOW_THREADS
    release(&p);
    return counts_bytes(counts, bins);
}

static PyObject *
set_decades(PyObject *self, PyObject *args)
{
    const char *kind;
    Py_buffer lo, split;
    int bins;
    if (!PyArg_ParseTuple(args, "sy*y*i:set_decades", &kind, &lo, &split, &bins))
        return NULL;
    int dbl = kind[0] == 'd';
    Py_ssize_t rows = dbl ? OCTAVES64 : OCTAVES32;
    int ok = (kind[0] == 'f' || dbl) && !kind[1] && bins > 2 && bins <= MAX_BINS && lo.len == rows * 4
             && split.len == rows * (dbl ? 8 : 4);
    for (Py_ssize_t i = 0; ok && i < rows; i++) {   /* a bin and the one above it, or the last bin alone */
        uint32_t bin = ((const uint32_t *)lo.buf)[i];
        int top = dbl ? ((const uint64_t *)split.buf)[i] == UINT64_MAX : ((const uint32_t *)split.buf)[i] == UINT32_MAX;
        ok = bin + 1 < (uint32_t)bins || (bin < (uint32_t)bins && top);
    }
    /* Each bin's lowest bit pattern, from the rows' ranges: row 0 is zero, rows 1..nmant the subnormal
       octaves [2**(r-1), 2**r), then one row per exponent. Bins must rise with the pattern. */
    const int nmant = dbl ? 52 : 23;
    uint64_t edge[MAX_BINS];
    uint32_t cur = 0;
    edge[0] = 0;
    for (Py_ssize_t i = 0; ok && i < rows; i++) {
        uint64_t start = i == 0 ? 0 : i <= nmant ? (uint64_t)1 << (i - 1) : (uint64_t)(i - nmant) << nmant;
        uint64_t end = i < nmant ? (uint64_t)1 << i : (uint64_t)(i + 1 - nmant) << nmant;   /* past the row */
        uint64_t cut = dbl ? ((const uint64_t *)split.buf)[i] : ((const uint32_t *)split.buf)[i];
        uint32_t bin = ((const uint32_t *)lo.buf)[i];
        uint64_t at[2] = {start, cut};
        uint32_t to[2] = {bin + (start >= cut), bin + 1};
        for (int t = 0; ok && t < 1 + (cut > start && cut < end); t++) {
            ok = to[t] >= cur && to[t] < (uint32_t)bins;
            for (; ok && cur < to[t]; cur++)
                edge[cur + 1] = at[t];
        }
    }
    ok = ok && cur + 1 == (uint32_t)bins;
    if (ok) {
        for (int i = 0; i < bins; i++) {
            if (dbl) edge64[i] = edge[i]; else edge32[i] = (uint32_t)edge[i];
        }
        memcpy(dbl ? (void *)lo64 : (void *)lo32, lo.buf, lo.len);
        memcpy(dbl ? (void *)split64 : (void *)split32, split.buf, split.len);
        if (dbl) bins64 = bins; else bins32 = bins;
    }
    PyBuffer_Release(&lo);
    PyBuffer_Release(&split);
    if (!ok) {
        PyErr_SetString(PyExc_ValueError, "set_decades(): tables of the wrong size, or bins that do not rise with |a-b|");
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"scan", scan, METH_VARARGS, "scan(a, b, kinds, atol, rtol, either, detail, histogram, want): see pytest_trt/_scan.c"},
    {"histogram", histogram, METH_VARARGS, "histogram(a, b, kinds): decade counts of |a-b| (int64 bytes)"},
    {"set_decades", set_decades, METH_VARARGS, "set_decades(kind, lo, split, bins): the decade tables"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_scan", "The comparator's fused inner loop (see pytest_trt/comparison/scan.py).", -1, methods,
};

PyMODINIT_FUNC
PyInit__scan(void)
{
    return PyModule_Create(&module);
}
