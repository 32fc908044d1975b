/* Exact n-gram repetition check over UTF-8 bytes (the fast path of mfr.text.repetition).
 *
 * has_repeat(data: bytes, n: int, freq: int) -> bool | None
 *   True when some n-gram of data.decode().split() occurs at least freq times (overlapping occurrences
 *   count); None when the text holds whitespace that bytes.split() does not know (the caller then
 *   splits the str).
 *
 * Tokens are split on ASCII whitespace like bytes.split(), which equals str.split() on UTF-8 text
 * without the other whitespace (UTF-8 bytes of multi-byte characters are all >= 0x80). Each token gets an FNV-1a hash, each window of n tokens a
 * rolling polynomial hash. Windows go into an open-addressing table keyed by window hash; a window whose
 * hash matches a stored one is compared token by token (hashes, lengths, then bytes), so two different
 * windows are never counted together and equal windows always are: the decision is exact.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static inline int is_space(unsigned char c) { return c == ' ' || (c >= '\t' && c <= '\r'); }

/* Whitespace str.split() honours but bytes.split() does not: \x1c-\x1f and, in UTF-8, U+0085, U+00A0,
 * U+1680, U+2000-U+200A, U+2028, U+2029, U+202F, U+205F, U+3000. Seeing one means the caller must split
 * the decoded text instead. */
static inline int is_other_space(const unsigned char *s, Py_ssize_t i, Py_ssize_t size) {
    unsigned char c = s[i];
    if (c >= 0x1c && c <= 0x1f) return 1;
    if (c < 0xc2) return 0;
    if (c == 0xc2) return i + 1 < size && (s[i + 1] == 0x85 || s[i + 1] == 0xa0);
    if (i + 2 >= size) return 0;
    if (c == 0xe1) return s[i + 1] == 0x9a && s[i + 2] == 0x80;
    if (c == 0xe2 && s[i + 1] == 0x80) return s[i + 2] <= 0x8a || s[i + 2] == 0xa8 || s[i + 2] == 0xa9 || s[i + 2] == 0xaf;
    if (c == 0xe2) return s[i + 1] == 0x81 && s[i + 2] == 0x9f;
    if (c == 0xe3) return s[i + 1] == 0x80 && s[i + 2] == 0x80;
    return 0;
}

typedef struct {
    uint64_t hash;
    Py_ssize_t first; /* first window with this content, -1 = empty slot */
    Py_ssize_t count;
} Slot;

static int same_window(const unsigned char *s, const Py_ssize_t *start, const Py_ssize_t *len,
                       const uint64_t *th, Py_ssize_t a, Py_ssize_t b, Py_ssize_t n) {
    for (Py_ssize_t j = 0; j < n; j++) {
        if (th[a + j] != th[b + j] || len[a + j] != len[b + j]) return 0;
    }
    for (Py_ssize_t j = 0; j < n; j++) {
        if (memcmp(s + start[a + j], s + start[b + j], (size_t)len[a + j]) != 0) return 0;
    }
    return 1;
}

static int repeated(const unsigned char *s, Py_ssize_t size, Py_ssize_t n, Py_ssize_t freq) {
    Py_ssize_t cap = size / 2 + 2, m = 0, i = 0;
    Py_ssize_t *start = malloc(sizeof(Py_ssize_t) * cap), *len = malloc(sizeof(Py_ssize_t) * cap);
    uint64_t *th = malloc(sizeof(uint64_t) * cap);
    int result = 0;
    if (!start || !len || !th) { result = -1; goto done; }
    while (i < size) {
        while (i < size && is_space(s[i])) i++;
        if (i >= size) break;
        Py_ssize_t a = i;
        uint64_t h = 1469598103934665603ULL;
        while (i < size && !is_space(s[i])) {
            if ((s[i] >= 0x1c && s[i] <= 0x1f) || s[i] >= 0xc2) {
                if (is_other_space(s, i, size)) { result = -2; goto done; }
            }
            h = (h ^ s[i]) * 1099511628211ULL;
            i++;
        }
        start[m] = a; len[m] = i - a; th[m] = h; m++;
    }
    Py_ssize_t windows = m - n + 1;
    if (windows < freq) goto done;
    if (freq <= 1) { result = 1; goto done; }
    Py_ssize_t slots = 16;
    while (slots < 2 * windows) slots <<= 1;
    Slot *table = malloc(sizeof(Slot) * (size_t)slots);
    if (!table) { result = -1; goto done; }
    for (Py_ssize_t k = 0; k < slots; k++) table[k].first = -1;
    const uint64_t B = 0x9E3779B97F4A7C15ULL;
    uint64_t top = 1, h = 0;  /* top = B^(n-1) */
    for (Py_ssize_t j = 0; j < n - 1; j++) top *= B;
    for (Py_ssize_t j = 0; j < n; j++) h = h * B + th[j];
    for (Py_ssize_t w = 0; w < windows; w++) {
        if (w > 0) h = (h - th[w - 1] * top) * B + th[w + n - 1];
        uint64_t mixed = h ^ (h >> 29);
        Py_ssize_t k = (Py_ssize_t)(mixed & (uint64_t)(slots - 1));
        for (;;) {
            Slot *slot = &table[k];
            if (slot->first < 0) { slot->hash = h; slot->first = w; slot->count = 1; break; }
            if (slot->hash == h && same_window(s, start, len, th, slot->first, w, n)) {
                if (++slot->count >= freq) { result = 1; free(table); goto done; }
                break;
            }
            k = (k + 1) & (slots - 1);
        }
    }
    free(table);
done:
    free(start); free(len); free(th);
    return result;
}

static PyObject *has_repeat(PyObject *self, PyObject *args) {
    const unsigned char *data;
    Py_ssize_t size, n, freq;
    (void)self;
    if (!PyArg_ParseTuple(args, "y#nn", &data, &size, &n, &freq)) return NULL;
    if (n < 1 || freq < 1) { PyErr_SetString(PyExc_ValueError, "n and freq must be positive"); return NULL; }
    int r;
    Py_BEGIN_ALLOW_THREADS
    r = repeated(data, size, n, freq);
    Py_END_ALLOW_THREADS
    if (r == -2) Py_RETURN_NONE;
    if (r < 0) return PyErr_NoMemory();
    return PyBool_FromLong(r);
}

static PyMethodDef methods[] = {
    {"has_repeat", has_repeat, METH_VARARGS, "Exact: does some n-gram of data.split() occur >= freq times?"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_ngram", NULL, -1, methods};

PyMODINIT_FUNC PyInit__ngram(void) { return PyModule_Create(&module); }
