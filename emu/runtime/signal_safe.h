// Owns the async-signal-safe primitives of the trap runtime: raw system calls
// and byte loops that never call into libc.
//
// Why not libc: under trap injection glibc's own string functions may be
// AVX-512 code that we armed with ud2, and on any host the SIGILL handler may
// interrupt code that holds a libc lock. Everything the handler's hit path
// and the code patcher touch is here or in the runtime's own memory.
#pragma once

#include <immintrin.h>

#include <cstddef>
#include <cstdint>

namespace avx512emu::runtime::sys {

// ---- Raw system calls ---------------------------------------------------------
// Return the kernel's value: >= 0 on success, -errno on failure.

inline long syscall6(long nr, long a, long b, long c, long d, long e, long f) {
  long ret;
  register long r10 __asm__("r10") = d;
  register long r8 __asm__("r8") = e;
  register long r9 __asm__("r9") = f;
  __asm__ volatile("syscall"
                   : "=a"(ret)
                   : "a"(nr), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8), "r"(r9)
                   : "rcx", "r11", "memory");
  return ret;
}

inline long write(int fd, const void* p, size_t n) {
  return syscall6(1, fd, long(p), long(n), 0, 0, 0);
}
inline long mmap(void* addr, size_t len, int prot, int flags) {
  return syscall6(9, long(addr), long(len), prot, flags, -1, 0);
}
inline long mprotect(void* addr, size_t len, int prot) {
  return syscall6(10, long(addr), long(len), prot, 0, 0, 0);
}
inline long munmap(void* addr, size_t len) {
  return syscall6(11, long(addr), long(len), 0, 0, 0, 0);
}
inline long mremap(void* old_addr, size_t old_len, size_t new_len, int flags, void* new_addr) {
  return syscall6(25, long(old_addr), long(old_len), long(new_len), flags, long(new_addr), 0);
}
inline long arch_prctl(int code, uint64_t* addr) {
  return syscall6(158, code, long(addr), 0, 0, 0, 0);
}
inline long gettid() {
  return syscall6(186, 0, 0, 0, 0, 0, 0);
}

//! Kernel ABI of rt_sigaction (not glibc's struct sigaction).
struct KernelSigaction {
  void* handler;
  unsigned long flags;
  void* restorer;
  uint64_t mask;
};
inline long rt_sigaction(int sig, const KernelSigaction* act, KernelSigaction* old) {
  return syscall6(13, sig, long(act), long(old), 8, 0, 0);
}

// ---- Byte loops ---------------------------------------------------------------
// The runtime is built for the AVX2 host baseline (AVX512EMU_HOST_FLAGS). The
// empty asm statements are compiler barriers: without them GCC's loop
// distribution may turn a copy or fill loop back into a memcpy/memset call.

namespace detail {
using u64 = uint64_t __attribute__((may_alias, aligned(1)));
inline void barrier() {
  __asm__ volatile("" ::: "memory");
}
}  // namespace detail

inline void copy(void* dst, const void* src, size_t n) {
  auto* d = static_cast<uint8_t*>(dst);
  const auto* s = static_cast<const uint8_t*>(src);
  if (n >= 1024) {  // pages: rep movsb is fast once started
    __asm__ volatile("rep movsb" : "+D"(d), "+S"(s), "+c"(n) : : "memory");
    return;
  }
  for (; n >= 32; n -= 32, d += 32, s += 32) {
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(d),
                        _mm256_loadu_si256(reinterpret_cast<const __m256i*>(s)));
    detail::barrier();
  }
  for (; n >= 8; n -= 8, d += 8, s += 8) {
    *reinterpret_cast<detail::u64*>(d) = *reinterpret_cast<const detail::u64*>(s);
    detail::barrier();
  }
  for (; n; --n) {
    *d++ = *s++;
    detail::barrier();
  }
}

inline void fill(void* dst, uint8_t value, size_t n) {
  auto* d = static_cast<uint8_t*>(dst);
  if (n >= 1024) {
    __asm__ volatile("rep stosb" : "+D"(d), "+c"(n) : "a"(value) : "memory");
    return;
  }
  const __m256i v = _mm256_set1_epi8(char(value));
  for (; n >= 32; n -= 32, d += 32) {
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(d), v);
    detail::barrier();
  }
  for (; n; --n) {
    *d++ = value;
    detail::barrier();
  }
}

inline bool equal(const void* a, const void* b, size_t n) {
  const auto* x = static_cast<const uint8_t*>(a);
  const auto* y = static_cast<const uint8_t*>(b);
  for (; n >= 16; n -= 16, x += 16, y += 16) {
    const __m128i e = _mm_cmpeq_epi8(_mm_loadu_si128(reinterpret_cast<const __m128i*>(x)),
                                     _mm_loadu_si128(reinterpret_cast<const __m128i*>(y)));
    if (_mm_movemask_epi8(e) != 0xffff) return false;
  }
  for (; n; --n)
    if (*x++ != *y++) return false;
  return true;
}

inline bool all_zero(const void* a, size_t n) {
  const auto* x = static_cast<const uint8_t*>(a);
  for (; n >= 16; n -= 16, x += 16) {
    const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(x));
    if (!_mm_testz_si128(v, v)) return false;
  }
  for (; n; --n)
    if (*x++) return false;
  return true;
}

// ---- Message formatting into a fixed buffer -----------------------------------

//! Builds one line of text without allocating; silently truncates.
class Line {
 public:
  Line& str(const char* s) {
    while (s && *s && len_ < sizeof buf_ - 1) buf_[len_++] = *s++;
    return *this;
  }
  Line& hex(uint64_t v, bool prefix = true) {
    if (prefix) str("0x");
    char tmp[16];
    int n = 0;
    do {
      tmp[n++] = "0123456789abcdef"[v & 15];
      v >>= 4;
    } while (v);
    while (n && len_ < sizeof buf_ - 1) buf_[len_++] = tmp[--n];
    return *this;
  }
  Line& dec(uint64_t v) {
    char tmp[20];
    int n = 0;
    do {
      tmp[n++] = char('0' + v % 10);
      v /= 10;
    } while (v);
    while (n && len_ < sizeof buf_ - 1) buf_[len_++] = tmp[--n];
    return *this;
  }
  Line& bytes(const uint8_t* p, size_t n) {
    for (size_t i = 0; i < n; ++i) {
      if (i) str(" ");
      if (p[i] < 16) str("0");
      hex(p[i], false);
    }
    return *this;
  }
  //! Writes the line and a newline to `fd`.
  void emit(int fd = 2) {
    buf_[len_++] = '\n';
    write(fd, buf_, len_);
    len_ = 0;
  }

 private:
  char buf_[512];
  size_t len_ = 0;
};

}  // namespace avx512emu::runtime::sys
