/* Runtime test program: masked loads next to a guard page.
     masked-off  elements past the page end are masked off: no fault
     fault       an enabled element lies in the guard page: SIGSEGV
     handler     as fault, with a SIGSEGV handler that reports the fault
                 address relative to the guard page and exits
   Native and emulated runs must end the same way. */
#define _GNU_SOURCE
#include <immintrin.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "checksum.h"

static char* guard;

static void on_segv(int sig, siginfo_t* info, void* context) {
  (void)sig;
  (void)context;
  char line[64];
  const int n =
      snprintf(line, sizeof line, "SIGSEGV at guard%+ld\n", (long)((char*)info->si_addr - guard));
  (void)!write(1, line, (size_t)n);
  _exit(0);
}

int main(int argc, char** argv) {
  const char* mode = argc > 1 ? argv[1] : "masked-off";
  char* p = mmap(NULL, 8192, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) return 1;
  for (int i = 0; i < 4096; ++i) p[i] = (char)(i * 7);
  guard = p + 4096;
  mprotect(guard, 4096, PROT_NONE);
  if (!strcmp(mode, "handler")) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_segv;
    sa.sa_flags = SA_SIGINFO;
    sigaction(SIGSEGV, &sa, NULL);
  }
  /* 16 floats starting 32 bytes before the guard page: elements 8..15 are in it. */
  const float* src = (const float*)(guard - 32);
  const __mmask16 mask = !strcmp(mode, "masked-off") ? 0x00ff : 0x01ff;
  printf("loading\n");
  fflush(stdout);
  float out[16];
  _mm512_storeu_ps(out, _mm512_maskz_loadu_ps(mask, src));
  printf("checksum %016llx\n", (unsigned long long)checksum_bytes(out, sizeof out, CHECKSUM_INIT));
  return 0;
}
