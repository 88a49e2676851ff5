/* Runtime test program: hand-written loops whose bodies mix AVX-512 and
   ordinary instructions, the shapes avx512emu runs whole as loop regions
   (the loop copied into the stub, its back edge chained there):
     side         a loop left early by a side exit, and entered in the
                  middle from outside (a side entry)
     jumptable    an indirect jump from outside into three places inside a
                  loop
     vex          VEX and SSE writes inside the loop to registers whose
                  bits 511:256 an AVX-512 instruction set
     flags        flags live across AVX-512 instructions (a compare and its
                  branch around vpaddd, an adc carry chain through vpxord)
     segv-copied  a fault in an ordinary load inside the loop: the program's
                  handler checks RIP, si_addr and marker registers, makes the
                  page readable and returns; the loop completes
     segv-avx512  the same for the loop's AVX-512 load
     fpe          (only with the argument "fpe") an unmasked divide-by-zero
                  in the loop's vdivps: the handler checks RIP, masks the
                  exception in the context's MXCSR and returns; the loop
                  completes. Apart because QEMU and the reference
                  interpreter raise no SIMD exceptions.
   Every case runs its loop many times first, so that under avx512emu the
   faulting iteration runs inside the region. Native and emulated runs must
   print the same lines. */
#define _GNU_SOURCE
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <ucontext.h>
#include <unistd.h>

#include "checksum.h"

/* Every loop function is noipa: -O3 clones functions called with constant
   arguments, and each loop must exist once (the test counts one region per
   loop); a clone of fault_loop or div_loop would also define the labels
   inside their asm twice. */
extern char copied_load_insn[], avx512_load_insn[], region_div_insn[];
static char* page; /* 2 pages; the second is the guard page when armed */

static void report(int sig, siginfo_t* info, ucontext_t* uc, const char* insn, const char* addr) {
  const greg_t* g = uc->uc_mcontext.gregs;
  uint64_t xmm2[2];
  memcpy(xmm2, &uc->uc_mcontext.fpregs->_xmm[2], 16);
  char line[200];
  const int n = snprintf(
      line, sizeof line, "signal %d code %d addr %s rip %s r12 %llx xmm2 %016llx%016llx\n", sig,
      info->si_code, sig == SIGSEGV ? ((char*)info->si_addr == addr ? "guard" : "other") : "-",
      (char*)g[REG_RIP] == insn ? "at-instruction" : "elsewhere", (unsigned long long)g[REG_R12],
      (unsigned long long)xmm2[1], (unsigned long long)xmm2[0]);
  (void)!write(1, line, (size_t)n);
}

static const char* segv_insn;
static void on_segv(int sig, siginfo_t* info, void* context) {
  report(sig, info, context, segv_insn, page + 4096);
  mprotect(page + 4096, 4096, PROT_READ | PROT_WRITE); /* let it complete */
}

static void on_fpe(int sig, siginfo_t* info, void* context) {
  ucontext_t* uc = context;
  report(sig, info, uc, region_div_insn, NULL);
  uc->uc_mcontext.fpregs->mxcsr |= 1u << 9; /* mask divide-by-zero */
  uc->uc_mcontext.fpregs->mxcsr &= ~0x3fu;  /* and clear the flags */
}

/* Sums 16-dword blocks of a[0..n) (n a multiple of 16) into out[16],
   skipping the first block's add when entering in the middle, and leaving
   after the block at `stop` (a side exit) when stop < n. */
__attribute__((noipa)) static void side_loop(const int32_t* a, long n, long stop, int enter_mid,
                                                int32_t* out) {
  __asm__ volatile(
      "xor %%ecx, %%ecx\n\t"
      "vpternlogd $0xff, %%zmm0, %%zmm0, %%zmm0\n\t" /* all ones */
      "vpxord %%zmm1, %%zmm1, %%zmm1\n\t"
      "test %[mid], %[mid]\n\t"
      "jnz 2f\n"
      "1:\n\t"
      "vpaddd (%[a],%%rcx,4), %%zmm1, %%zmm1\n\t"
      "cmp %[stop], %%rcx\n\t"
      "je 3f\n" /* the side exit */
      "2:\n\t"  /* the side entry */
      "vpsubd %%zmm0, %%zmm1, %%zmm1\n\t"
      "vprold $3, %%zmm1, %%zmm1\n\t"
      "add $16, %%rcx\n\t"
      "cmp %[n], %%rcx\n\t"
      "jb 1b\n"
      "3:\n\t"
      "vmovdqu32 %%zmm1, (%[out])\n\t"
      :
      : [a] "r"(a), [n] "r"(n), [stop] "r"(stop), [mid] "r"(enter_mid), [out] "r"(out)
      : "rcx", "xmm0", "xmm1", "memory", "cc");
}

/* A loop of three parts, entered from outside through an indirect jump to
   part `which`; each part mixes an AVX-512 instruction with scalar code. */
__attribute__((noipa)) static void jump_table_loop(const int64_t* a, long rounds, long which,
                                                      int64_t* out) {
  __asm__ volatile(
      "vmovdqu64 (%[a]), %%zmm2\n\t"
      "vpsrlq $1, %%zmm2, %%zmm3\n\t"
      "mov %[rounds], %%r8\n\t"
      "xor %%r9d, %%r9d\n\t"
      "lea 1f(%%rip), %%rax\n\t"
      "lea 2f(%%rip), %%rdx\n\t"
      "cmp $1, %[which]\n\t"
      "cmove %%rdx, %%rax\n\t"
      "lea 3f(%%rip), %%rdx\n\t"
      "cmp $2, %[which]\n\t"
      "cmove %%rdx, %%rax\n\t"
      "jmp *%%rax\n"
      "1:\n\t"
      "vpmullq %%zmm2, %%zmm2, %%zmm3\n\t"
      "add $1, %%r9\n"
      "2:\n\t"
      "vpaddq %%zmm3, %%zmm2, %%zmm2\n\t"
      "lea 7(%%r9,%%r9,2), %%r9\n"
      "3:\n\t"
      "vprolq $13, %%zmm2, %%zmm2\n\t"
      "vpxorq %%zmm3, %%zmm2, %%zmm3\n\t"
      "sub $1, %%r8\n\t"
      "jnz 1b\n\t"
      "vmovdqu64 %%zmm2, (%[out])\n\t"
      "vmovdqu64 %%zmm3, 64(%[out])\n\t"
      "mov %%r9, 128(%[out])\n\t"
      :
      : [a] "r"(a), [rounds] "r"(rounds), [which] "r"(which), [out] "r"(out)
      : "rax", "rdx", "r8", "r9", "xmm2", "xmm3", "memory", "cc");
}

/* VEX and SSE writes inside the loop: a VEX write to ymm4 clears bits
   511:256 of zmm4, an SSE write to xmm5 keeps them; the AVX-512
   instructions after them read all 512 bits. */
__attribute__((noipa)) static void vex_loop(const int32_t* a, long rounds, int32_t* out) {
  __asm__ volatile(
      "vmovdqu32 (%[a]), %%zmm6\n\t"
      "vmovdqu32 64(%[a]), %%zmm7\n\t"
      "vpxord %%zmm8, %%zmm8, %%zmm8\n\t"
      "1:\n\t"
      "vpaddd %%zmm6, %%zmm7, %%zmm4\n\t" /* zmm4: all 512 bits */
      "vpaddd %%zmm6, %%zmm7, %%zmm5\n\t"
      "vpaddd %%ymm6, %%ymm4, %%ymm4\n\t" /* VEX: zmm4[511:256] := 0 */
      "paddd %%xmm6, %%xmm5\n\t"          /* SSE: zmm5[511:128] kept */
      "vpaddd %%zmm4, %%zmm8, %%zmm8\n\t"
      "vpxord %%zmm5, %%zmm8, %%zmm8\n\t"
      "vprold $1, %%zmm7, %%zmm7\n\t"
      "dec %[rounds]\n\t"
      "jnz 1b\n\t"
      "vmovdqu32 %%zmm8, (%[out])\n\t"
      "vmovdqu32 %%zmm4, 64(%[out])\n\t"
      "vmovdqu32 %%zmm5, 128(%[out])\n\t"
      : [rounds] "+r"(rounds)
      : [a] "r"(a), [out] "r"(out)
      : "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "memory", "cc");
}

/* Flags live across AVX-512 instructions: the compare before vpaddd decides
   the branch after it, and the carry of one adc reaches the next through
   vpxord and dec (which keeps CF). */
__attribute__((noipa)) static void flags_loop(const int32_t* a, long last, const uint64_t* q,
                                                 long words, uint64_t* out) {
  __asm__ volatile(
      "xor %%ecx, %%ecx\n\t"
      "vpxord %%zmm1, %%zmm1, %%zmm1\n"
      "1:\n\t"
      "cmp %[last], %%rcx\n\t"
      "vpaddd (%[a],%%rcx,4), %%zmm1, %%zmm1\n\t"
      "lea 16(%%rcx), %%rcx\n\t"
      "jb 1b\n\t"
      "vmovdqu64 %%zmm1, (%[out])\n\t"
      "mov %[words], %%rcx\n\t"
      "mov $-1, %%rax\n\t"
      "xor %%edx, %%edx\n\t"
      "stc\n"
      "2:\n\t"
      "adc (%[q]), %%rax\n\t"
      "vpxord %%zmm1, %%zmm1, %%zmm1\n\t"
      "adc $0, %%rdx\n\t"
      "lea 8(%[q]), %[q]\n\t"
      "dec %%rcx\n\t"
      "jnz 2b\n\t"
      "mov %%rax, 64(%[out])\n\t"
      "mov %%rdx, 72(%[out])\n\t"
      : [q] "+r"(q)
      : [a] "r"(a), [last] "r"(last), [words] "r"(words), [out] "r"(out)
      : "rax", "rcx", "rdx", "xmm1", "memory", "cc");
}

/* Sums `blocks` 64-byte blocks from `v` (AVX-512 load) and one qword per
   block from `q` (ordinary load), with marker values in r12 and xmm2. */
__attribute__((noipa)) static void fault_loop(const char* v, const char* q, long blocks,
                                                 uint64_t* out) {
  __asm__ volatile(
      "mov $0x5555666677778888, %%r12\n\t"
      "vpcmpeqd %%xmm2, %%xmm2, %%xmm2\n\t"
      "vpsrlq $4, %%xmm2, %%xmm2\n\t"
      "vpxorq %%zmm9, %%zmm9, %%zmm9\n\t"
      "xor %%r10d, %%r10d\n"
      "1:\n\t"
      ".globl avx512_load_insn\n"
      "avx512_load_insn:\n\t"
      "vpaddq (%[v]), %%zmm9, %%zmm9\n\t"
      ".globl copied_load_insn\n"
      "copied_load_insn:\n\t"
      "mov (%[q]), %%r11\n\t"
      "add %%r11, %%r10\n\t"
      "add $64, %[v]\n\t"
      "add $8, %[q]\n\t"
      "dec %[blocks]\n\t"
      "jnz 1b\n\t"
      "vmovdqu64 %%zmm9, (%[out])\n\t"
      "mov %%r10, 64(%[out])\n\t"
      : [v] "+r"(v), [q] "+r"(q), [blocks] "+r"(blocks)
      : [out] "r"(out)
      : "r10", "r11", "r12", "xmm2", "xmm9", "memory", "cc");
}

/* Divides 16 floats by b[i] for each i < n, summing the quotients. */
__attribute__((noipa)) static void div_loop(const float* a, const float* b, long n, float* out) {
  __asm__ volatile(
      "mov $0x5555666677778888, %%r12\n\t"
      "vpcmpeqd %%xmm2, %%xmm2, %%xmm2\n\t"
      "vpsrlq $4, %%xmm2, %%xmm2\n\t"
      "vmovups (%[a]), %%zmm10\n\t"
      "vxorps %%zmm11, %%zmm11, %%zmm11\n"
      "1:\n\t"
      "vbroadcastss (%[b]), %%zmm12\n\t"
      ".globl region_div_insn\n"
      "region_div_insn:\n\t"
      "vdivps %%zmm12, %%zmm10, %%zmm13\n\t"
      "vaddps %%zmm13, %%zmm11, %%zmm11\n\t"
      "add $4, %[b]\n\t"
      "dec %[n]\n\t"
      "jnz 1b\n\t"
      "vmovups %%zmm11, (%[out])\n\t"
      : [b] "+r"(b), [n] "+r"(n)
      : [a] "r"(a), [out] "r"(out)
      : "r12", "xmm2", "xmm10", "xmm11", "xmm12", "xmm13", "memory", "cc");
}

static void print_sum(const char* what, const void* p, size_t n) {
  printf("%s %016llx\n", what, (unsigned long long)checksum_bytes(p, n, CHECKSUM_INIT));
  fflush(stdout);
}

static void fpe_case(void) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_flags = SA_SIGINFO;
  float fa[16], fb[64], fout[16];
  for (int i = 0; i < 16; ++i) fa[i] = (float)i - 7.5f;
  for (int i = 0; i < 64; ++i) fb[i] = (float)(i % 5) + 0.5f;
  for (int r = 0; r < 50; ++r) div_loop(fa, fb, 64, fout);
  print_sum("div", fout, sizeof fout);
  sa.sa_sigaction = on_fpe;
  sigaction(SIGFPE, &sa, NULL);
  fb[40] = 0.0f;
  unsigned mxcsr;
  __asm__ volatile("stmxcsr %0" : "=m"(mxcsr));
  mxcsr &= ~(1u << 9); /* unmask divide-by-zero */
  __asm__ volatile("ldmxcsr %0" : : "m"(mxcsr));
  div_loop(fa, fb, 64, fout);
  print_sum("fpe", fout, sizeof fout);
}

int main(int argc, char** argv) {
  if (argc > 1 && !strcmp(argv[1], "fpe")) {
    fpe_case();
    return 0;
  }
  int32_t a[1024], out32[48];
  int64_t a64[8], out64[17];
  for (int i = 0; i < 1024; ++i) a[i] = i * 7919 - 12345;
  for (int i = 0; i < 8; ++i) a64[i] = (int64_t)i * 0x9e3779b97f4a7c15ll + 1;

  uint64_t sum = CHECKSUM_INIT;
  for (int r = 0; r < 200; ++r) {
    side_loop(a, 1024, 1024, 0, out32); /* no side exit */
    sum = checksum_bytes(out32, 64, sum);
    side_loop(a, 1024, 16 * (r % 64), 0, out32);
    sum = checksum_bytes(out32, 64, sum);
    side_loop(a, 1024, 1024, 1, out32);
    sum = checksum_bytes(out32, 64, sum);
  }
  printf("side %016llx\n", (unsigned long long)sum);

  sum = CHECKSUM_INIT;
  for (int r = 0; r < 300; ++r) {
    jump_table_loop(a64, 1 + r % 37, r % 3, out64);
    sum = checksum_bytes(out64, sizeof out64, sum);
  }
  printf("jumptable %016llx\n", (unsigned long long)sum);

  sum = CHECKSUM_INIT;
  for (int r = 0; r < 100; ++r) {
    vex_loop(a + r, 1 + r, out32);
    sum = checksum_bytes(out32, sizeof out32, sum);
  }
  printf("vex %016llx\n", (unsigned long long)sum);

  uint64_t q[64], fout[10];
  for (int i = 0; i < 64; ++i) q[i] = 0x8000000000000000ull + (uint64_t)i * 0x1234567890abull;
  sum = CHECKSUM_INIT;
  for (int r = 0; r < 100; ++r) {
    flags_loop(a + r, 16 * (1 + r % 40), q, 1 + r % 64, fout);
    sum = checksum_bytes(fout, sizeof fout - 8, sum);
  }
  printf("flags %016llx\n", (unsigned long long)sum);
  fflush(stdout);

  page = mmap(NULL, 8192, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (page == MAP_FAILED) return 1;
  for (int i = 0; i < 8192; ++i) page[i] = (char)(i * 13);
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_flags = SA_SIGINFO;
  sa.sa_sigaction = on_segv;
  sigaction(SIGSEGV, &sa, NULL);
  uint64_t fo[9];
  for (int r = 0; r < 50; ++r) fault_loop(page, page + 1024, 16, fo); /* warm: no fault */
  print_sum("warm", fo, sizeof fo);
  /* The ordinary load reaches the guard page after 40 blocks. */
  segv_insn = copied_load_insn;
  mprotect(page + 4096, 4096, PROT_NONE);
  fault_loop(page, page + 4096 - 40 * 8, 48, fo);
  print_sum("segv-copied", fo, sizeof fo);
  /* The AVX-512 load reaches it after 20 blocks. */
  segv_insn = avx512_load_insn;
  mprotect(page + 4096, 4096, PROT_NONE);
  fault_loop(page + 4096 - 20 * 64, page, 48, fo);
  print_sum("segv-avx512", fo, sizeof fo);
  return 0;
}
