/* Runtime test program: VEX/SSE instructions run natively between two
   emulated EVEX instructions. On real hardware a VEX write to ymmN (or
   xmmN) zeroes zmmN[511:256] and vzeroupper zeroes bits 511:128 of zmm0-15,
   while a legacy SSE write to xmmN keeps bits 511:128. The runtime must see
   this through its shadow state. Each case loads a 512-bit pattern with an
   EVEX move, runs the native instruction, stores the 512-bit register with
   an EVEX move and prints the stored bytes.
   Every case runs twice: the first run traps, the second goes through the
   patched site's stub (unless --no-patch).
   With the argument "undetectable" it runs the one case the runtime
   documents it cannot detect: a VEX write that leaves ymmN's value as it was.
   The idiom cases are such writes that the runtime does handle, as
   simdjson's icelake validate_utf8 has them: zmm4 (or zmm12, whose idiom
   has a 3-byte VEX prefix) gets nonzero bits 511:256 and zero bits 255:0
   from an EVEX instruction, a VEX zeroing idiom clears it, and an EVEX
   instruction reads all 512 bits. vzeroupper does the same to bits 511:128
   of a register whose bits 255:128 were zero. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

static uint8_t pattern[64] __attribute__((aligned(64)));
static uint8_t other[64] __attribute__((aligned(64)));
static uint8_t result[64] __attribute__((aligned(64)));

static int pass;

static void print_result(const char* name) {
  printf("%d %-22s", pass, name);
  for (int i = 0; i < 64; ++i) printf("%02x%s", result[i], i % 16 == 15 && i != 63 ? " " : "");
  printf("\n");
}

#define CASE(name, native)                                                       \
  do {                                                                           \
    memset(result, 0xee, sizeof result);                                         \
    __asm__ volatile(                                                            \
        "vmovdqu64 (%[p]), %%zmm1\n\t"                                           \
        "vmovdqu64 (%[o]), %%zmm2\n\t" native "\n\tvmovdqu64 %%zmm1, (%[r])\n\t" \
        :                                                                        \
        : [p] "r"(pattern), [o] "r"(other), [r] "r"(result)                      \
        : "memory", "xmm1", "xmm2", "xmm3");                                     \
    print_result(name);                                                          \
  } while (0)

static uint8_t upper_only[64] __attribute__((aligned(64)));

/* EVEX load of upper_only into zmmR, the native idiom, then (EVEX) zmmR
   := zmmR | zmm2 stored whole: zmm2 is `other`, so a stale upper half shows
   as bits that are not other's. */
#define IDIOM_CASE(name, reg, native)                                                 \
  do {                                                                                \
    memset(result, 0xee, sizeof result);                                              \
    __asm__ volatile(                                                                 \
        "vmovdqu64 (%[o]), %%zmm2\n\t"                                                \
        "vmovdqu64 (%[u]), %%zmm" #reg "\n\t" native                                  \
        "\n\tvpord %%zmm2, %%zmm" #reg ", %%zmm" #reg "\n\t"                           \
        "vmovdqu64 %%zmm" #reg ", (%[r])\n\t"                                          \
        :                                                                             \
        : [u] "r"(upper_only), [o] "r"(other), [r] "r"(result)                        \
        : "memory", "xmm2", "xmm" #reg);                                              \
    print_result(name);                                                               \
  } while (0)

static void idiom_cases(void) {
  IDIOM_CASE("vpxor-xmm4", 4, "vpxor %%xmm4, %%xmm4, %%xmm4");
  IDIOM_CASE("vxorps-ymm4", 4, "vxorps %%ymm4, %%ymm4, %%ymm4");
  IDIOM_CASE("vpsubd-xmm4", 4, "vpsubd %%xmm4, %%xmm4, %%xmm4");
  IDIOM_CASE("vpxor-xmm12", 12, "vpxor %%xmm12, %%xmm12, %%xmm12");
  IDIOM_CASE("vzeroupper-hi-zero", 4, "vzeroupper");
}

int main(int argc, char** argv) {
  for (int i = 0; i < 64; ++i) {
    pattern[i] = (uint8_t)(0x11 * (i % 15 + 1));
    other[i] = (uint8_t)(0xa0 + i);
    upper_only[i] = i < 32 ? 0 : (uint8_t)(0x31 + i);
  }
  if (argc > 1 && !strcmp(argv[1], "undetectable")) {
    CASE("vex-same-value", "vmovdqa %%ymm1, %%ymm1");
    return 0;
  }
  for (pass = 0; pass < 2; ++pass) {
    CASE("none", "");
    CASE("vex256-write", "vmovdqa %%ymm2, %%ymm1");
    CASE("vex128-write", "vmovdqa %%xmm2, %%xmm1");
    CASE("vex-arith", "vpaddd %%ymm2, %%ymm1, %%ymm1");
    CASE("vzeroupper", "vzeroupper");
    CASE("sse-write", "movdqa %%xmm2, %%xmm1");
    CASE("vex-other-reg", "vmovdqa %%ymm1, %%ymm3");
    idiom_cases();
  }
  return 0;
}
