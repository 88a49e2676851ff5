/* Runtime test program: a hot AVX-512 loop interrupted by a timer signal
   about every 200 us. The loop keeps its accumulators in zmm registers
   (bits 511:256 included) and marker values in rbx and r12 for its whole
   run; the handler checks the markers in the interrupted context and runs
   AVX-512 code of its own on other registers. The loop's result must not
   change, as on a CPU with AVX-512: the kernel saves and restores the
   registers around the handler. Prints booleans only (the number of
   signals varies from run to run). */
#define _GNU_SOURCE
#include <immintrin.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <ucontext.h>
#include <unistd.h>

#include "checksum.h"

#define MARK_RBX 0x1111222233334444ull
#define MARK_R12 0x5555666677778888ull

static uint32_t data[1024] __attribute__((aligned(64)));
static uint32_t out[16] __attribute__((aligned(64)));
volatile int in_loop;
static volatile long ticks, bad_markers, bad_handler;

/* The handler's own AVX-512 work: a sum it can check against plain C. */
__attribute__((noinline)) static uint32_t handler_sum(const uint32_t* v) {
  __m512i acc = _mm512_setzero_si512();
  for (int i = 0; i < 64; i += 16) acc = _mm512_add_epi32(acc, _mm512_loadu_si512(v + i));
  return (uint32_t)_mm512_reduce_add_epi32(acc);
}

static void on_alarm(int sig, siginfo_t* info, void* context) {
  (void)sig;
  (void)info;
  const ucontext_t* uc = context;
  ++ticks;
  if (in_loop && ((uint64_t)uc->uc_mcontext.gregs[REG_RBX] != MARK_RBX ||
                  (uint64_t)uc->uc_mcontext.gregs[REG_R12] != MARK_R12))
    ++bad_markers;
  uint32_t expect = 0;
  for (int i = 0; i < 64; ++i) expect += data[i + 128];
  if (handler_sum(data + 128) != expect) ++bad_handler;
}

/* rounds x (add, xor, rotate over the 4 KiB) with accumulators in zmm0,
   zmm1, zmm17 and markers in rbx and r12; in_loop is 1 while they hold. */
__attribute__((noinline)) static void hot_loop(long rounds) {
  __asm__ volatile(
      "movabs $0x1111222233334444, %%rbx\n\t"
      "movabs $0x5555666677778888, %%r12\n\t"
      "vpxord %%zmm0, %%zmm0, %%zmm0\n\t"
      "vpternlogd $0xff, %%zmm1, %%zmm1, %%zmm1\n\t"
      "vpxord %%zmm17, %%zmm17, %%zmm17\n\t"
      "movl $1, in_loop(%%rip)\n"
      "1:\n\t"
      "xor %%eax, %%eax\n"
      "2:\n\t"
      "vmovdqu32 (%[d],%%rax,4), %%zmm2\n\t"
      "vpaddd %%zmm2, %%zmm0, %%zmm0\n\t"
      "vpxord %%zmm0, %%zmm1, %%zmm1\n\t"
      "vprold $7, %%zmm1, %%zmm1\n\t"
      "vpaddd %%zmm1, %%zmm17, %%zmm17\n\t"
      "add $16, %%rax\n\t"
      "cmp $1024, %%rax\n\t"
      "jne 2b\n\t"
      "dec %[n]\n\t"
      "jnz 1b\n\t"
      "movl $0, in_loop(%%rip)\n\t"
      "vpxord %%zmm17, %%zmm0, %%zmm0\n\t"
      "vpxord %%zmm1, %%zmm0, %%zmm0\n\t"
      "vmovdqu32 %%zmm0, (%[o])\n\t"
      : [n] "+r"(rounds)
      : [d] "r"(data), [o] "r"(out)
      : "rax", "rbx", "r12", "xmm0", "xmm1", "xmm2", "xmm17", "memory", "cc");
}

/* The same computation in plain C. */
static void reference(long rounds, uint32_t* r) {
  uint32_t a[16] = {0}, b[16], c[16] = {0};
  for (int j = 0; j < 16; ++j) b[j] = 0xffffffffu;
  for (long n = 0; n < rounds; ++n)
    for (int i = 0; i < 1024; i += 16)
      for (int j = 0; j < 16; ++j) {
        a[j] += data[i + j];
        b[j] ^= a[j];
        b[j] = (b[j] << 7) | (b[j] >> 25);
        c[j] += b[j];
      }
  for (int j = 0; j < 16; ++j) r[j] = a[j] ^ c[j] ^ b[j];
}

int main(void) {
  for (int i = 0; i < 1024; ++i) data[i] = (uint32_t)(i * 2654435761u);
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_sigaction = on_alarm;
  sa.sa_flags = SA_SIGINFO | SA_RESTART;
  sigaction(SIGALRM, &sa, NULL);
  const struct itimerval every = {{0, 200}, {0, 200}};
  setitimer(ITIMER_REAL, &every, NULL);
  const long rounds = 3000;
  hot_loop(rounds);
  /* On a loaded machine the loop can end before the first tick: wait for
     one (up to a second) before the timer goes off. */
  for (long spin = 0; !ticks && spin < 1000; ++spin) usleep(1000);
  const struct itimerval off = {{0, 0}, {0, 0}};
  setitimer(ITIMER_REAL, &off, NULL);
  uint32_t expect[16];
  reference(rounds, expect);
  printf("result %s\n", memcmp(out, expect, sizeof out) ? "differs" : "matches");
  printf("signals %s\n", ticks > 0 ? "arrived" : "missing");
  printf("markers %s\n", bad_markers ? "clobbered" : "kept");
  printf("handler results %s\n", bad_handler ? "wrong" : "right");
  printf("checksum %016llx\n", (unsigned long long)checksum_bytes(out, sizeof out, CHECKSUM_INIT));
  return 0;
}
