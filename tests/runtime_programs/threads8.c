/* Runtime test program: 8 threads run AVX-512 code at once. Each keeps its
   own values in zmm16-31 and k1-k7 across a sched_yield system call made
   inside the asm block (the kernel preserves vector registers across system
   calls, so every thread must find its own values afterwards: a shadow state
   shared between threads would leak values between them). Prints one
   checksum per thread in thread order. A second asm block is a loop: all
   threads run it at once inside one loop region. */
#include <immintrin.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>

#include "checksum.h"

enum { kThreads = 8, kRounds = 2000 };

struct Work {
  int id;
  float in[64];
  float out[64];
  uint64_t checksum;
};

static void* worker(void* arg) {
  struct Work* w = (struct Work*)arg;
  uint64_t h = CHECKSUM_INIT;
  for (int r = 0; r < kRounds; ++r) {
    const uint32_t mask = (uint32_t)(w->id * 0x9e37u + (uint32_t)r * 0x79b9u) & 0xffffu;
    __asm__ volatile(
        "vmovups (%[in]), %%zmm16\n\t"
        "vmovups 64(%[in]), %%zmm17\n\t"
        "vmovups 128(%[in]), %%zmm30\n\t"
        "vmovups 192(%[in]), %%zmm31\n\t"
        "kmovw %[mask], %%k3\n\t"
        "knotw %%k3, %%k6\n\t"
        "mov $24, %%eax\n\t" /* sched_yield: let the other threads run in between */
        "syscall\n\t"
        "vaddps %%zmm17, %%zmm16, %%zmm18%{%%k3%}%{z%}\n\t"
        "vmulps %%zmm31, %%zmm30, %%zmm18%{%%k6%}\n\t"
        "vfmadd231ps %%zmm16, %%zmm31, %%zmm18%{%%k3%}\n\t"
        "vmovups %%zmm18, (%[out])\n\t"
        "vmovups %%zmm30, 64(%[out])\n\t"
        "kmovw %%k6, %%eax\n\t"
        "mov %%eax, 128(%[out])\n\t"
        :
        : [in] "r"(w->in), [out] "r"(w->out), [mask] "r"(mask)
        : "rax", "rcx", "r11", "memory", "xmm16", "xmm17", "xmm18", "xmm30", "xmm31", "k3", "k6");
    /* A loop of AVX-512 and ordinary instructions: under avx512emu all
       eight threads run it inside one loop region at once. */
    __asm__ volatile(
        "kmovw %[mask], %%k2\n\t"
        "mov $12, %%ecx\n\t"
        "vmovdqu32 (%[in]), %%zmm20\n"
        "1:\n\t"
        "vpaddd 64(%[in]), %%zmm20, %%zmm20\n\t"
        "vprold $7, %%zmm20, %%zmm21%{%%k2%}%{z%}\n\t"
        "add %%ecx, %%eax\n\t"
        "vpxord %%zmm21, %%zmm20, %%zmm20\n\t"
        "dec %%ecx\n\t"
        "jnz 1b\n\t"
        "vmovdqu32 %%zmm20, 192(%[out])\n\t"
        :
        : [in] "r"(w->in), [out] "r"(w->out), [mask] "r"(mask)
        : "rax", "rcx", "memory", "xmm20", "xmm21", "k2", "cc");
    h = checksum_bytes(w->out, 256, h);
    for (int i = 0; i < 64; ++i) w->in[i] = w->in[i] * 0.5f + w->out[i & 15] * 0.25f;
  }
  w->checksum = h;
  return NULL;
}

int main(void) {
  static struct Work work[kThreads];
  pthread_t threads[kThreads];
  for (int t = 0; t < kThreads; ++t) {
    work[t].id = t;
    for (int i = 0; i < 64; ++i) work[t].in[i] = (float)(t * 64 + i) * 0.125f - 3.0f;
    if (pthread_create(&threads[t], NULL, worker, &work[t]) != 0) return 1;
  }
  for (int t = 0; t < kThreads; ++t) pthread_join(threads[t], NULL);
  for (int t = 0; t < kThreads; ++t)
    printf("thread %d checksum %016llx\n", t, (unsigned long long)work[t].checksum);
  return 0;
}
