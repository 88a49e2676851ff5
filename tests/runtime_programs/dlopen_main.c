/* Runtime test program: dlopen()s the library named by argv[1] (AVX-512
   code loaded after start-up), calls it and prints a checksum per round;
   then dlclose()s it and does it all again. */
#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>

#include "checksum.h"

typedef void (*MaskedScale)(const float*, float*, int, uint32_t);

int main(int argc, char** argv) {
  if (argc < 2) return 2;
  static float in[256], out[256];
  for (int i = 0; i < 256; ++i) in[i] = (float)i * 0.75f - 40.0f;
  /* Twice: the second load comes after dlclose, usually at the same
     address, where the first load's patched sites and loop region were. */
  for (int load = 0; load < 2; ++load) {
    void* lib = dlopen(argv[1], RTLD_NOW);
    if (!lib) {
      printf("dlopen failed: %s\n", dlerror());
      return 1;
    }
    const MaskedScale fn = (MaskedScale)dlsym(lib, "masked_scale");
    if (!fn) return 1;
    for (uint32_t r = 0; r < 20; ++r) {
      fn(in, out, 256, r * 0x9e3779b9u + (uint32_t)load);
      printf("load %d round %2u checksum %016llx\n", load, r,
             (unsigned long long)checksum_bytes(out, sizeof out, CHECKSUM_INIT));
    }
    if (dlclose(lib)) return 1;
  }
  return 0;
}
