/* Measurement program (not a test): the cost of one emulated instruction.
     trap_cost bare [N]    ud2 + an empty SIGILL handler that skips it: the
                           floor of any trap-based emulation on this machine
     trap_cost avx512 [N]  a loop of one 512-bit vaddps. Natively: hardware
                           cost. Under `avx512emu run --simulate-avx2
                           --no-patch`: a trap round trip per iteration;
                           without --no-patch: the patched site's stub path.
   Prints nanoseconds per iteration (loop overhead included). */
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <ucontext.h>

static void skip_ud2(int sig, siginfo_t* info, void* context) {
  (void)sig;
  (void)info;
  ((ucontext_t*)context)->uc_mcontext.gregs[REG_RIP] += 2;
}

static double now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

int main(int argc, char** argv) {
  const char* mode = argc > 1 ? argv[1] : "avx512";
  long n = argc > 2 ? atol(argv[2]) : 200000;
  const long iterations = n;
  double t0, t1;
  if (!strcmp(mode, "bare")) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = skip_ud2;
    sa.sa_flags = SA_SIGINFO;
    sigaction(SIGILL, &sa, NULL);
    t0 = now_ns();
    __asm__ volatile("1: ud2\n\tdec %0\n\tjnz 1b" : "+r"(n) : : "memory");
    t1 = now_ns();
  } else {
    // VEX zeroing clears all 512 bits of both registers.
    __asm__ volatile("vxorps %%ymm0, %%ymm0, %%ymm0\n\tvxorps %%ymm1, %%ymm1, %%ymm1" ::
                         : "xmm0", "xmm1");
    t0 = now_ns();
    __asm__ volatile("1: vaddps %%zmm1, %%zmm0, %%zmm0\n\tdec %0\n\tjnz 1b" : "+r"(n) : : "xmm0");
    t1 = now_ns();
  }
  printf("%s: %ld iterations, %.1f ns each\n", mode, iterations, (t1 - t0) / (double)iterations);
  return 0;
}
