/* The comparator's inner loop in C: one pass over a float pair, every statistic at once.
 *
 * numpy needs nine array operations (each a trip through memory or cache) per chunk for what this
 * does in one read of the two arrays, and the GIL stays released for the whole call, so threads
 * scale. pytest_trt/comparison.py decides everything else (chunks, threads, NaN/Inf classes,
 * histograms, messages) and falls back to its numpy path when this module is not built; both paths
 * give the same reports (tests/test_compare.py runs every test on both).
 *
 * scan(a, b, atol, rtol, either, detail) -> None | tuple
 *   a, b: 1-D C-contiguous buffers of one float type ('f' or 'd'), equally long.
 *   Arithmetic is done in that type, in the order np.isclose uses: bound = atol + rtol*|b|
 *   ("either": max(atol, rtol*|b|)); an element fails when |a-b| > bound. No fused multiply-add
 *   (built with -ffp-contract=off), so bounds round exactly as numpy's do.
 *   Returns None when any |a-b| is not finite (NaN, Inf, or overflow): the caller classifies those.
 *   Else (max_abs, i_abs, max_rel, i_rel, budget, i_budget, mismatches, min_atol, min_rtol):
 *   greatest |a-b|, |a-b|/|b| and |a-b|/bound with the first index of each (-1, -1 when every value
 *   was 0/0), the failing count, and the smallest atol (at rtol) and rtol (at atol) that would pass
 *   the blocks that hold failures (all blocks when detail is true).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <float.h>
#include <math.h>
#include <stdint.h>

#if defined(_MSC_VER) && !defined(restrict)
#define restrict __restrict
#endif

#define BLOCK 1024   /* elements per block: indices are searched, and tolerances computed, per block */
#define LANES 16     /* independent accumulators, so that compilers vectorize without reassociating */

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__) && defined(__GLIBC__)
#define MULTIVERSION __attribute__((target_clones("avx2", "default")))
#else
#define MULTIVERSION
#endif

typedef struct {
    double max_abs, max_rel, budget, min_atol, min_rtol;
    Py_ssize_t i_abs, i_rel, i_budget, mismatches;
} Stats;

#define MAX_OF(x, acc) ((x) > (acc) ? (x) : (acc))   /* NaN x leaves acc: np.fmax semantics */

#define DEFINE_SCAN(NAME, T, FABS, TMAX)                                                              \
static int NAME(const T *restrict a, const T *restrict b, Py_ssize_t n, T atol, T rtol, int either,  \
                int detail, Stats *o)                                                                 \
{                                                                                                     \
    for (Py_ssize_t s = 0; s < n; s += BLOCK) {                                                       \
        const Py_ssize_t k = n - s < BLOCK ? n - s : BLOCK;                                           \
        const T *A = a + s, *B = b + s;                                                               \
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
                        T x = d > m * rtol ? d : 0, y = d > atol ? d / m : 0;                         \
                        na[l] = MAX_OF(x, na[l]); nr[l] = MAX_OF(y, nr[l]);                           \
                    }                                                                                 \
                } else {                                                                              \
                    for (int l = 0; l < lanes; l++) {                                                 \
                        T d = FABS(A[j + l] - B[j + l]), m = FABS(B[j + l]);                          \
                        T x = d - m * rtol, y = (d - atol) / m;                                       \
                        na[l] = MAX_OF(x, na[l]); nr[l] = MAX_OF(y, nr[l]);                           \
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

MULTIVERSION DEFINE_SCAN(scan_float, float, fabsf, FLT_MAX)
MULTIVERSION DEFINE_SCAN(scan_double, double, fabs, DBL_MAX)

static int
get_vector(PyObject *obj, Py_buffer *view, const char *which)
{
    if (PyObject_GetBuffer(obj, view, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0)
        return -1;
    const char *f = view->format ? view->format : "B";
    if (*f == '<' || *f == '=' || *f == '@')
        f++;
    if (view->ndim != 1 || !((f[0] == 'f' && view->itemsize == 4) || (f[0] == 'd' && view->itemsize == 8)) || f[1]) {
        PyErr_Format(PyExc_TypeError, "scan(): %s must be a 1-D contiguous float32 or float64 array", which);
        PyBuffer_Release(view);
        return -1;
    }
    return 0;
}

static PyObject *
scan(PyObject *self, PyObject *args)
{
    PyObject *a_obj, *b_obj;
    double atol, rtol;
    int either, detail;
    if (!PyArg_ParseTuple(args, "OOddpp:scan", &a_obj, &b_obj, &atol, &rtol, &either, &detail))
        return NULL;
    Py_buffer a, b;
    if (get_vector(a_obj, &a, "a") < 0)
        return NULL;
    if (get_vector(b_obj, &b, "b") < 0) {
        PyBuffer_Release(&a);
        return NULL;
    }
    if (a.itemsize != b.itemsize || a.shape[0] != b.shape[0]) {
        PyErr_SetString(PyExc_TypeError, "scan(): a and b must have one dtype and one length");
        PyBuffer_Release(&a);
        PyBuffer_Release(&b);
        return NULL;
    }
    Stats o = {-1, -1, -1, 0, 0, -1, -1, -1, 0};
    Py_ssize_t n = b.shape[0];
    int finite;
    Py_BEGIN_ALLOW_THREADS
    if (a.itemsize == 4)
        finite = scan_float((const float *)a.buf, (const float *)b.buf, n, (float)atol, (float)rtol, either, detail, &o);
    else
        finite = scan_double((const double *)a.buf, (const double *)b.buf, n, atol, rtol, either, detail, &o);
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&a);
    PyBuffer_Release(&b);
    if (!finite)
        Py_RETURN_NONE;
    return Py_BuildValue("(dndndnndd)", o.max_abs, o.i_abs, o.max_rel, o.i_rel, o.budget, o.i_budget,
                         o.mismatches, o.min_atol, o.min_rtol);
}

static PyMethodDef methods[] = {
    {"scan", scan, METH_VARARGS, "scan(a, b, atol, rtol, either, detail): see pytest_trt/_scan.c"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_scan", "The comparator's fused inner loop (see pytest_trt/comparison.py).", -1, methods,
};

PyMODINIT_FUNC
PyInit__scan(void)
{
    return PyModule_Create(&module);
}
