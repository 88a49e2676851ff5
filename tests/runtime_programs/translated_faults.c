/* Runtime test program: faults raised by an AVX-512 instruction, as the
   program's own handler sees them. Each mode runs the instruction a few
   times on good data first (under avx512emu its site is then patched, so the
   fault comes from inside translated code), then makes it fault:
     segv-rip     a load from a guard page: the handler reports si_addr, and
                  whether RIP is the instruction's address and a GPR and an
                  xmm register hold what they held before it
     segv-return  the same, but the handler makes the page readable and
                  returns: the instruction runs again and completes
     fpe          an unmasked divide-by-zero in vdivps: the handler reports
                  si_code, RIP and the registers
   Native and emulated runs must print the same lines. */
#define _GNU_SOURCE
#include <immintrin.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <ucontext.h>
#include <unistd.h>

#include "checksum.h"

extern char load_insn[], div_insn[];
static char* page;
static int resume;

static void report(int sig, siginfo_t* info, ucontext_t* uc, const char* insn) {
  const greg_t* g = uc->uc_mcontext.gregs;
  uint64_t xmm2[2];
  memcpy(xmm2, &uc->uc_mcontext.fpregs->_xmm[2], 16);
  char line[200];
  const int n = snprintf(line, sizeof line,
                         "signal %d code %d addr %s rip %s rbx %llx r12 %llx xmm2 %016llx%016llx\n",
                         sig, info->si_code,
                         sig == SIGSEGV ? ((char*)info->si_addr == page + 4096 ? "guard" : "other") : "-",
                         (char*)g[REG_RIP] == insn ? "at-instruction" : "elsewhere",
                         (unsigned long long)g[REG_RBX], (unsigned long long)g[REG_R12],
                         (unsigned long long)xmm2[1], (unsigned long long)xmm2[0]);
  (void)!write(1, line, (size_t)n);
}

static void on_segv(int sig, siginfo_t* info, void* context) {
  report(sig, info, context, load_insn);
  if (!resume) _exit(0);
  resume = 0;
  mprotect(page + 4096, 4096, PROT_READ | PROT_WRITE);  /* let it complete */
}

static void on_fpe(int sig, siginfo_t* info, void* context) {
  report(sig, info, context, div_insn);
  _exit(0);
}

/* vmovdqu64 zmm1, [rdi] with marker values in rbx, r12 and xmm2. */
__attribute__((noinline)) static void load(const void* src, void* out) {
  __asm__ volatile(
      "mov $0x1111222233334444, %%rbx\n\t"
      "mov $0x5555666677778888, %%r12\n\t"
      "vpcmpeqd %%xmm2, %%xmm2, %%xmm2\n\t"
      "vpsrlq $4, %%xmm2, %%xmm2\n\t"
      ".globl load_insn\n"
      "load_insn:\n\t"
      "vmovdqu64 (%0), %%zmm1\n\t"
      "vmovdqu64 %%zmm1, (%1)\n\t"
      :
      : "r"(src), "r"(out)
      : "rbx", "r12", "xmm1", "xmm2", "memory");
}

/* vdivps zmm1, zmm1, zmm3 with the same markers. */
__attribute__((noinline)) static void divide(const float* a, const float* b, float* out) {
  __asm__ volatile(
      "mov $0x1111222233334444, %%rbx\n\t"
      "mov $0x5555666677778888, %%r12\n\t"
      "vpcmpeqd %%xmm2, %%xmm2, %%xmm2\n\t"
      "vpsrlq $4, %%xmm2, %%xmm2\n\t"
      "vmovups (%0), %%zmm1\n\t"
      "vmovups (%1), %%zmm3\n\t"
      ".globl div_insn\n"
      "div_insn:\n\t"
      "vdivps %%zmm3, %%zmm1, %%zmm1\n\t"
      "vmovups %%zmm1, (%2)\n\t"
      :
      : "r"(a), "r"(b), "r"(out)
      : "rbx", "r12", "xmm1", "xmm2", "xmm3", "memory");
}

int main(int argc, char** argv) {
  const char* mode = argc > 1 ? argv[1] : "segv-rip";
  page = mmap(NULL, 8192, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (page == MAP_FAILED) return 1;
  for (int i = 0; i < 8192; ++i) page[i] = (char)(i * 13);
  uint8_t out[64];
  uint64_t sum = CHECKSUM_INIT;
  for (int i = 0; i < 20; ++i) {  /* trapped once, then run through the patched site */
    load(page + 64 * i, out);
    sum = checksum_bytes(out, sizeof out, sum);
  }
  printf("warm %016llx\n", (unsigned long long)sum);
  fflush(stdout);
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_flags = SA_SIGINFO;
  if (!strcmp(mode, "fpe")) {
    float a[16], b[16], c[16];
    for (int i = 0; i < 16; ++i) a[i] = (float)i + 1, b[i] = 2.0f;
    for (int i = 0; i < 20; ++i) divide(a, b, c);
    printf("divided %g %g\n", c[0], c[15]);
    fflush(stdout);
    sa.sa_sigaction = on_fpe;
    sigaction(SIGFPE, &sa, NULL);
    b[7] = 0.0f;
    _mm_setcsr(_mm_getcsr() & ~(1u << 9));  /* unmask divide-by-zero */
    divide(a, b, c);
    printf("no exception\n");
    return 0;
  }
  sa.sa_sigaction = on_segv;
  sigaction(SIGSEGV, &sa, NULL);
  resume = !strcmp(mode, "segv-return");
  mprotect(page + 4096, 4096, PROT_NONE);
  load(page + 4096 - 16, out); /* crosses into the guard page */
  printf("completed %016llx\n", (unsigned long long)checksum_bytes(out, sizeof out, CHECKSUM_INIT));
  return 0;
}
