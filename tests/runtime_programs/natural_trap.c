/* Runtime test program: an AVX-512 instruction that this CPU really rejects
   (#UD without trap injection) and that avx512emu does not translate:
   vexp2ps (AVX512ER, Xeon Phi only). Without an argument the program dies
   by SIGILL after printing "before", under avx512emu as without it. With
   "handler" it first installs its own SIGILL handler, which must receive
   that SIGILL (and skip the instruction), while translatable AVX-512 code
   after it still runs emulated. */
#define _GNU_SOURCE
#include <immintrin.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <ucontext.h>

#include "checksum.h"

static volatile sig_atomic_t caught;

static void on_sigill(int sig, siginfo_t* info, void* context) {
  (void)sig;
  (void)info;
  ucontext_t* uc = (ucontext_t*)context;
  caught = 1;
  uc->uc_mcontext.gregs[REG_RIP] += 6; /* the length of the vexp2ps below */
}

int main(int argc, char** argv) {
  const int with_handler = argc > 1 && !strcmp(argv[1], "handler");
  if (with_handler) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_sigill;
    sa.sa_flags = SA_SIGINFO;
    sigaction(SIGILL, &sa, NULL);
  }
  printf("before\n");
  fflush(stdout);
  __asm__ volatile(".byte 0x62, 0xf2, 0x7d, 0x48, 0xc8, 0xc1" /* vexp2ps zmm0, zmm1 */
                   ::
                       : "xmm0");
  printf("after, handler %s\n", caught ? "called" : "not called");
  float data[16], out[16];
  for (int i = 0; i < 16; ++i) data[i] = (float)i * 1.5f;
  for (int round = 0; round < 4; ++round) { /* repeated: the sites get patched */
    const __m512 v = _mm512_maskz_loadu_ps((__mmask16)(0x5a5a << round), data);
    _mm512_storeu_ps(out, _mm512_mask_add_ps(v, 0x0ff0, v, v));
    printf("round %d checksum %016llx\n", round,
           (unsigned long long)checksum_bytes(out, sizeof out, CHECKSUM_INIT));
  }
  return 0;
}
