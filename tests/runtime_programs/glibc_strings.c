/* Runtime test program: drives glibc's string and memory functions hard.
   Built WITHOUT AVX-512 flags: its only AVX-512 code is glibc's own (the
   *_evex and *_avx512 variants its ifuncs pick on an AVX-512 CPU).

   Every function runs for every length 0..MAX_LEN and the alignments 0..63
   of its buffers, in two placements:
     - head: the buffer starts ALIGN bytes after a PROT_NONE guard page;
     - tail: the buffer ends flush against the next guard page (its start
       alignment then varies with the length).
   A vector implementation that reads one byte too far, or before the start,
   dies of SIGSEGV. Each result is checked against a plain C reference
   (errors are counted) and folded into a checksum; the program prints one
   line per function, which the tests compare between runs.

   usage: glibc_strings [MAX_LEN [ALIGN_STEP]]
   Lengths below 256 use all 64 alignments; longer ones use every
   ALIGN_STEP-th alignment (rotating with the length, so all are covered). */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <unistd.h>
#include <wchar.h>

#include "checksum.h"

enum {
  kAlignments = 64,
  kAllAlignmentsBelow = 256,
  kUsable = 3 * 4096, /* room for 4096 bytes + alignment + memmove shift */
  kMaxErrorsShown = 8,
};

/* Bytes of the buffers are 1..kMaxText; needles use values above it, so a
   needle occurs only where a case plants it. */
enum { kMaxText = 0xdf, kNeedleBase = 0xe0 };

/* A usable region between two PROT_NONE guard pages, plus the bytes it
   must hold between cases. */
struct Arena {
  uint8_t* lo; /* first usable byte, right after the leading guard page */
  uint8_t* hi; /* the trailing guard page */
  _Alignas(8) uint8_t pristine[kUsable];
};

struct Case {
  size_t len;
  unsigned align; /* start offset after lo (head placement) */
  int tail;       /* placed flush against hi instead */
};

struct Tally {
  const char* name;
  uint64_t calls, errors, sum;
};

static struct Arena g_a, g_b;
static size_t g_max_len = 4096;
static unsigned g_align_step = 1;

/* ---- buffers ------------------------------------------------------------ */

static void map_arena(struct Arena* arena, uint64_t seed) {
  const size_t page = (size_t)sysconf(_SC_PAGESIZE);
  const size_t usable = (kUsable + page - 1) / page * page;
  uint8_t* base =
      mmap(NULL, usable + 2 * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (base == MAP_FAILED || mprotect(base, page, PROT_NONE) ||
      mprotect(base + page + usable, page, PROT_NONE)) {
    perror("glibc_strings: mmap");
    exit(2);
  }
  arena->lo = base + page + usable - kUsable;
  arena->hi = base + page + usable;
  for (size_t i = 0; i < kUsable; ++i) {
    seed ^= seed << 13;
    seed ^= seed >> 7;
    seed ^= seed << 17;
    arena->pristine[i] = (uint8_t)(1 + seed % kMaxText);
    arena->lo[i] = arena->pristine[i];
  }
}

/* Where a case's buffer of len + extra bytes starts in an arena. */
static uint8_t* place(const struct Arena* arena, const struct Case* c, size_t extra) {
  return c->tail ? arena->hi - c->len - extra : arena->lo + c->align;
}

/* The second buffer of two-buffer functions: another alignment, so that
   source and destination are misaligned against each other. */
static struct Case other(const struct Case* c) {
  struct Case o = *c;
  o.align = (unsigned)((c->align * 37 + c->len) % kAlignments);
  return o;
}

/* The window around a buffer that a function must leave alone, clipped to
   the arena: [p - 64, p + n + 64). */
static uint8_t* window_lo(const struct Arena* arena, const uint8_t* p) {
  return p - arena->lo > 64 ? (uint8_t*)p - 64 : arena->lo;
}
static uint8_t* window_hi(const struct Arena* arena, const uint8_t* end) {
  return arena->hi - end > 64 ? (uint8_t*)end + 64 : arena->hi;
}

/* Plain loops (this file is built with -fno-builtin and without loop
   pattern distribution, so none of them becomes a call to glibc). */
static void restore(struct Arena* arena) {
  /* Whole words: this runs several times per case. */
  uint64_t* to = (uint64_t*)arena->lo;
  const uint64_t* from = (const uint64_t*)arena->pristine;
  for (size_t i = 0; i < kUsable / sizeof(uint64_t); ++i) to[i] = from[i];
}
static int unchanged(const struct Arena* arena, const uint8_t* from, const uint8_t* to) {
  for (const uint8_t* p = from; p < to; ++p)
    if (*p != arena->pristine[p - arena->lo]) return 0;
  return 1;
}
static int same_bytes(const uint8_t* a, const uint8_t* b, size_t n) {
  for (size_t i = 0; i < n; ++i)
    if (a[i] != b[i]) return 0;
  return 1;
}
static void copy_bytes(uint8_t* to, const uint8_t* from, size_t n) {
  for (size_t i = 0; i < n; ++i) to[i] = from[i];
}

/* ---- results -------------------------------------------------------------- */

static void note(struct Tally* t, uint64_t value) {
  t->sum = checksum_bytes(&value, sizeof value, t->sum);
}

static uint64_t offset_of(const void* result, const void* base) {
  return result ? (uint64_t)((const uint8_t*)result - (const uint8_t*)base) : ~(uint64_t)0;
}

static int sign(int v) {
  return (v > 0) - (v < 0);
}

static void expect(struct Tally* t, int ok, const struct Case* c, const char* what) {
  if (ok) return;
  if (t->errors++ < kMaxErrorsShown)
    fprintf(stderr, "glibc_strings: %s len %zu %s %u: %s\n", t->name, c->len,
            c->tail ? "tail, align" : "align", c->tail ? 0 : c->align, what);
}

/* Checks and notes a buffer [p, p + n) written by a function: the window
   around it unchanged. The caller checks the contents. */
static void note_written(struct Tally* t, const struct Arena* arena, const uint8_t* p, size_t n,
                         const struct Case* c) {
  expect(
      t,
      unchanged(arena, window_lo(arena, p), p) && unchanged(arena, p + n, window_hi(arena, p + n)),
      c, "wrote outside its buffer");
  t->sum = checksum_bytes(p, n, t->sum);
}

/* Needle positions of a search case: P1 < P2 < len, or absent (== len). */
static void needle_positions(const struct Case* c, size_t* p1, size_t* p2) {
  *p1 = (c->len * 5 + c->align) % (c->len + 1);
  *p2 = *p1 < c->len ? *p1 + (c->len - *p1) / 2 : c->len;
}

static uint8_t needle_byte(const struct Case* c) {
  return (uint8_t)(kNeedleBase + (c->len + c->align) % 32);
}

/* ---- the functions ---------------------------------------------------- */

static void test_memcpy(struct Tally* t, const struct Case* c) {
  const struct Case oc = other(c);
  const uint8_t* src = place(&g_a, c, 0);
  uint8_t* dst = place(&g_b, &oc, 0);
  expect(t, memcpy(dst, src, c->len) == dst, c, "return value");
  expect(t, same_bytes(dst, src, c->len), c, "contents");
  note_written(t, &g_b, dst, c->len, c);
  restore(&g_b);
}

static void test_memmove(struct Tally* t, const struct Case* c) {
  /* Overlapping moves both ways, by a distance that varies with the case. */
  static uint8_t expected[kUsable];
  const size_t shift = 1 + (c->len * 3 + c->align) % 127;
  for (int forward = 0; forward < 2; ++forward) {
    uint8_t* src = c->tail ? g_a.hi - c->len - (forward ? shift : 0) : g_a.lo + 128 + c->align;
    uint8_t* dst = forward ? src + shift : src - shift;
    copy_bytes(expected, src, c->len);
    expect(t, memmove(dst, src, c->len) == dst, c, "return value");
    expect(t, same_bytes(dst, expected, c->len), c, "contents");
    /* Only [dst, dst + len) may change; bytes of src outside it keep theirs. */
    note_written(t, &g_a, dst, c->len, c);
    restore(&g_a);
  }
}

static void test_memset(struct Tally* t, const struct Case* c) {
  uint8_t* dst = place(&g_b, c, 0);
  const int value = (int)((c->len + c->align) & 0xff);
  expect(t, memset(dst, value, c->len) == dst, c, "return value");
  int ok = 1;
  for (size_t i = 0; i < c->len; ++i) ok &= dst[i] == (uint8_t)value;
  expect(t, ok, c, "contents");
  note_written(t, &g_b, dst, c->len, c);
  restore(&g_b);
}

/* Makes the second buffer equal to the first; returns the position where a
   difference can be planted (len when there is none). */
static size_t make_equal(uint8_t* s2, const uint8_t* s1, const struct Case* c) {
  copy_bytes(s2, s1, c->len);
  return c->len ? (c->len * 7 + c->align) % c->len : 0;
}

/* Plants a difference at s2[p], above or below s1[p] (bytes above 0x7f
   included: the comparison is unsigned). Returns the expected sign. */
static int plant_difference(uint8_t* s2, const uint8_t* s1, size_t p) {
  const uint8_t delta = (uint8_t)(1 + p % 5);
  s2[p] = s1[p] > 0x70 ? (uint8_t)(s1[p] - delta) : (uint8_t)(s1[p] + delta);
  return s1[p] > s2[p] ? 1 : -1;
}

static void test_memcmp(struct Tally* t, const struct Case* c) {
  const struct Case oc = other(c);
  const uint8_t* s1 = place(&g_a, c, 0);
  uint8_t* s2 = place(&g_b, &oc, 0);
  const size_t p = make_equal(s2, s1, c);
  int r = memcmp(s1, s2, c->len);
  expect(t, r == 0, c, "equal buffers");
  note(t, (uint64_t)sign(r));
  if (c->len) {
    const int want = plant_difference(s2, s1, p);
    r = memcmp(s1, s2, c->len);
    expect(t, sign(r) == want, c, "planted difference");
    note(t, (uint64_t)sign(r));
    r = memcmp(s1, s2, p); /* the equal prefix */
    expect(t, r == 0, c, "equal prefix");
  }
  restore(&g_b);
}

static void test_memchr(struct Tally* t, const struct Case* c) {
  uint8_t* s = place(&g_a, c, 0);
  size_t p1, p2;
  needle_positions(c, &p1, &p2);
  const uint8_t needle = needle_byte(c);
  if (p1 < c->len) s[p1] = s[p2] = needle;
  const void* r = memchr(s, needle, c->len);
  expect(t, r == (p1 < c->len ? s + p1 : NULL), c, "memchr");
  note(t, offset_of(r, s));
  r = memrchr(s, needle, c->len);
  expect(t, r == (p1 < c->len ? s + p2 : NULL), c, "memrchr");
  note(t, offset_of(r, s));
  restore(&g_a);
  /* rawmemchr: the needle is always there, at the latest at s[len]. */
  s = place(&g_a, c, 1);
  s[c->len] = needle;
  if (p1 < c->len) s[p1] = needle;
  r = rawmemchr(s, needle);
  expect(t, r == s + (p1 < c->len ? p1 : c->len), c, "rawmemchr");
  note(t, offset_of(r, s));
  restore(&g_a);
}

static void test_strlen(struct Tally* t, const struct Case* c) {
  char* s = (char*)place(&g_a, c, 1);
  s[c->len] = 0;
  size_t r = strlen(s);
  expect(t, r == c->len, c, "strlen");
  note(t, r);
  const size_t limits[3] = {c->len / 2, c->len, c->len + 1 + c->align};
  for (int i = 0; i < 3; ++i) {
    r = strnlen(s, limits[i]);
    expect(t, r == (limits[i] < c->len ? limits[i] : c->len), c, "strnlen");
    note(t, r);
  }
  restore(&g_a);
  /* No terminator at all: the limit ends flush against the guard page. */
  if (c->tail) {
    s = (char*)place(&g_a, c, 0);
    r = strnlen(s, c->len);
    expect(t, r == c->len, c, "strnlen without terminator");
  }
}

static void test_strchr(struct Tally* t, const struct Case* c) {
  char* s = (char*)place(&g_a, c, 1);
  size_t p1, p2;
  needle_positions(c, &p1, &p2);
  const char needle = (char)needle_byte(c);
  s[c->len] = 0;
  if (p1 < c->len) s[p1] = s[p2] = needle;
  const char* r = strchr(s, needle);
  expect(t, r == (p1 < c->len ? s + p1 : NULL), c, "strchr");
  note(t, offset_of(r, s));
  r = strrchr(s, needle);
  expect(t, r == (p1 < c->len ? s + p2 : NULL), c, "strrchr");
  note(t, offset_of(r, s));
  r = strchrnul(s, needle);
  expect(t, r == s + p1, c, "strchrnul");
  note(t, offset_of(r, s));
  r = strchr(s, 0);
  expect(t, r == s + c->len, c, "strchr of the terminator");
  restore(&g_a);
}

static void test_strcmp(struct Tally* t, const struct Case* c) {
  const struct Case oc = other(c);
  char* s1 = (char*)place(&g_a, c, 1);
  char* s2 = (char*)place(&g_b, &oc, 1);
  const size_t p = make_equal((uint8_t*)s2, (const uint8_t*)s1, c);
  s1[c->len] = s2[c->len] = 0;
  int r = strcmp(s1, s2);
  expect(t, r == 0, c, "strcmp of equal strings");
  note(t, (uint64_t)sign(r));
  r = strncmp(s1, s2, c->len + 1 + c->align);
  expect(t, r == 0, c, "strncmp of equal strings");
  if (c->len) {
    const int want = plant_difference((uint8_t*)s2, (const uint8_t*)s1, p);
    r = strcmp(s1, s2);
    expect(t, sign(r) == want, c, "strcmp of a planted difference");
    note(t, (uint64_t)sign(r));
    r = strncmp(s1, s2, p);
    expect(t, r == 0, c, "strncmp of the equal prefix");
    r = strncmp(s1, s2, p + 1);
    expect(t, sign(r) == want, c, "strncmp up to the difference");
    note(t, (uint64_t)sign(r));
    s2[p] = 0; /* s2 a prefix of s1 */
    r = strcmp(s1, s2);
    expect(t, r > 0, c, "strcmp against a prefix");
    r = strcmp(s2, s1);
    expect(t, r < 0, c, "strcmp of a prefix");
  }
  restore(&g_b);
  restore(&g_a);
}

static void test_strcasecmp(struct Tally* t, const struct Case* c) {
  const struct Case oc = other(c);
  char* s1 = (char*)place(&g_a, c, 1);
  char* s2 = (char*)place(&g_b, &oc, 1);
  const size_t p = make_equal((uint8_t*)s2, (const uint8_t*)s1, c);
  for (size_t i = 0; i < c->len; ++i) /* swap the case of ASCII letters */
    if ((s2[i] | 0x20) >= 'a' && (s2[i] | 0x20) <= 'z') s2[i] ^= 0x20;
  s1[c->len] = s2[c->len] = 0;
  int r = strcasecmp(s1, s2);
  expect(t, r == 0, c, "strcasecmp of strings that differ in case");
  r = strncasecmp(s1, s2, c->len);
  expect(t, r == 0, c, "strncasecmp of strings that differ in case");
  if (c->len) {
    s2[p] = 0;
    r = strcasecmp(s1, s2);
    expect(t, r > 0, c, "strcasecmp against a prefix");
    note(t, (uint64_t)sign(r));
  }
  restore(&g_b);
  restore(&g_a);
}

static void test_strcpy(struct Tally* t, const struct Case* c) {
  const struct Case oc = other(c);
  char* src = (char*)place(&g_a, c, 1);
  src[c->len] = 0;
  char* dst = (char*)place(&g_b, &oc, 1);
  expect(t, strcpy(dst, src) == dst, c, "strcpy return value");
  expect(t, same_bytes((uint8_t*)dst, (uint8_t*)src, c->len + 1), c, "strcpy contents");
  note_written(t, &g_b, (uint8_t*)dst, c->len + 1, c);
  restore(&g_b);
  expect(t, stpcpy(dst, src) == dst + c->len, c, "stpcpy return value");
  expect(t, same_bytes((uint8_t*)dst, (uint8_t*)src, c->len + 1), c, "stpcpy contents");
  note_written(t, &g_b, (uint8_t*)dst, c->len + 1, c);
  restore(&g_b);
  /* strncpy pads with zeros up to n, or stops at n without a terminator. */
  const size_t pad = c->align % 9, limits[2] = {c->len + pad, c->len / 2};
  for (int i = 0; i < 2; ++i) {
    const size_t n = limits[i];
    dst = c->tail ? (char*)g_b.hi - n : (char*)place(&g_b, &oc, 0);
    expect(t, strncpy(dst, src, n) == dst, c, "strncpy return value");
    int ok = 1;
    for (size_t j = 0; j < n; ++j) ok &= dst[j] == (j < c->len ? src[j] : 0);
    expect(t, ok, c, "strncpy contents");
    note_written(t, &g_b, (uint8_t*)dst, n, c);
    restore(&g_b);
  }
  /* strcat after a prefix of up to 60 bytes. */
  const size_t prefix = (c->align * 3) % 61;
  dst = c->tail ? (char*)g_b.hi - prefix - c->len - 1 : (char*)place(&g_b, &oc, 0);
  dst[prefix] = 0;
  expect(t, strcat(dst, src) == dst, c, "strcat return value");
  expect(t, unchanged(&g_b, (uint8_t*)dst, (uint8_t*)dst + prefix), c, "strcat prefix");
  expect(t, same_bytes((uint8_t*)dst + prefix, (uint8_t*)src, c->len + 1), c, "strcat contents");
  note_written(t, &g_b, (uint8_t*)dst + prefix, c->len + 1, c);
  restore(&g_b);
  restore(&g_a);
}

static void test_wide(struct Tally* t, const struct Case* c) {
  /* Wide strings of len / 4 characters, 4-byte aligned. */
  struct Case wc = *c;
  wc.align &= ~3u;
  const size_t n = c->len / sizeof(wchar_t);
  wc.len = n * sizeof(wchar_t);
  wchar_t* w = (wchar_t*)place(&g_a, &wc, sizeof(wchar_t));
  w[n] = 0;
  size_t r = wcslen(w);
  expect(t, r == n, c, "wcslen");
  note(t, r);
  const size_t p = n ? (c->len * 7 + c->align) % n : 0;
  const wchar_t needle = (wchar_t)0x7fff0000 + (wchar_t)c->align; /* outside the text's values */
  if (n) w[p] = needle;
  const wchar_t* found = wmemchr(w, needle, n);
  expect(t, found == (n ? w + p : NULL), c, "wmemchr");
  note(t, offset_of(found, w));
  found = wcschr(w, needle);
  expect(t, found == (n ? w + p : NULL), c, "wcschr");
  restore(&g_a);

  struct Case wo = other(&wc);
  wo.align &= ~3u;
  wchar_t* w2 = (wchar_t*)place(&g_b, &wo, sizeof(wchar_t));
  w = (wchar_t*)place(&g_a, &wc, sizeof(wchar_t));
  copy_bytes((uint8_t*)w2, (const uint8_t*)w, wc.len);
  w[n] = w2[n] = 0;
  int cmp = wcscmp(w, w2);
  expect(t, cmp == 0, c, "wcscmp of equal strings");
  if (n) {
    w2[p] = w[p] + (p % 2 ? 1 : -1);
    cmp = wcscmp(w, w2);
    expect(t, sign(cmp) == (p % 2 ? -1 : 1), c, "wcscmp of a planted difference");
    note(t, (uint64_t)sign(cmp));
  }
  restore(&g_b);
  restore(&g_a);

  w2 = (wchar_t*)place(&g_b, &wo, 0);
  const wchar_t fill = (wchar_t)(0x10001 * (c->len + 1));
  expect(t, wmemset(w2, fill, n) == w2, c, "wmemset return value");
  int ok = 1;
  for (size_t i = 0; i < n; ++i) ok &= w2[i] == fill;
  expect(t, ok, c, "wmemset contents");
  note_written(t, &g_b, (uint8_t*)w2, wc.len, c);
  restore(&g_b);
}

/* ---- driver ------------------------------------------------------------- */

static int selected(size_t len, unsigned align) {
  return len < kAllAlignmentsBelow || align % g_align_step == len % g_align_step;
}

static void run(const char* name, void (*test)(struct Tally*, const struct Case*)) {
  struct Tally t = {name, 0, 0, CHECKSUM_INIT};
  for (size_t len = 0; len <= g_max_len; ++len) {
    for (unsigned align = 0; align < kAlignments; ++align) {
      if (!selected(len, align)) continue;
      const struct Case c = {len, align, 0};
      test(&t, &c);
      ++t.calls;
    }
    const struct Case flush = {len, 0, 1};
    test(&t, &flush);
    ++t.calls;
  }
  printf("%-10s cases %8llu errors %llu checksum %016llx\n", name, (unsigned long long)t.calls,
         (unsigned long long)t.errors, (unsigned long long)t.sum);
  fflush(stdout);
}

int main(int argc, char** argv) {
  if (argc > 1) g_max_len = strtoul(argv[1], NULL, 10);
  if (argc > 2) g_align_step = (unsigned)strtoul(argv[2], NULL, 10);
  if (argc > 3 || g_max_len > 4096 || g_align_step == 0 || g_align_step > kAlignments) {
    fprintf(stderr, "usage: glibc_strings [MAX_LEN (<= 4096) [ALIGN_STEP (1..64)]]\n");
    return 2;
  }
  map_arena(&g_a, 0x9e3779b97f4a7c15ull);
  map_arena(&g_b, 0xd1b54a32d192ed03ull);
  run("memcpy", test_memcpy);
  run("memmove", test_memmove);
  run("memset", test_memset);
  run("memcmp", test_memcmp);
  run("memchr", test_memchr);
  run("strlen", test_strlen);
  run("strchr", test_strchr);
  run("strcmp", test_strcmp);
  run("strcasecmp", test_strcasecmp);
  run("strcpy", test_strcpy);
  run("wide", test_wide);
  return 0;
}
