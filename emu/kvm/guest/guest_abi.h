/* Owns the contract between the VMM and the bundled guest image: I/O ports,
   the image header, workload ids and the data seed. Shared by the guest's C
   code and the VMM's C++ code. */
#ifndef AVX512EMU_KVM_GUEST_ABI_H
#define AVX512EMU_KVM_GUEST_ABI_H

#include <stdint.h>

/* Ports. The miss hypercall, the progress and the result ports are open to CPL3 through the
   TSS I/O bitmap; the exception port is used by the CPL0 kernel only. */
#define GUEST_PORT_MISS 0xe0      /* out al: dispatcher asks for a translation */
#define GUEST_PORT_EXCEPTION 0xe1 /* out al = vector: the kernel reports an exception */
#define GUEST_PORT_RESULT 0xe2    /* out al, rdi = result: the workload is done */
/* out al: one loop iteration of a workload is done. The VMM counts these to
   place migrations and upgrades at reproducible points inside the loops. */
#define GUEST_PORT_PROGRESS 0xe3

#define GUEST_IMAGE_MAGIC 0x31474d4935313258ull /* "X2515IMG1" truncated */
#define GUEST_IMAGE_BASE 0x400000ull
#define GUEST_SEED 0x9e3779b97f4a7c15ull

/* First bytes of the image at GUEST_IMAGE_BASE. */
struct GuestImageHeader {
  uint64_t magic;
  uint64_t entry;      /* _start(id, saved_rip_gva, dispatcher_gva) */
  uint64_t text_start; /* code range swept for AVX-512 instructions */
  uint64_t text_end;
  uint64_t image_end; /* end of .bss */
};

enum {
  GUEST_WORKLOAD_MASKED_DOT = 0,
  GUEST_WORKLOAD_BYTE_HISTOGRAM = 1,
  GUEST_WORKLOAD_PREFIX_SUM = 2,
  GUEST_WORKLOAD_STRING_SEARCH = 3,
  GUEST_PROBE_GENUINE_UD2 = 100,
  GUEST_PROBE_INVALID_BYTES = 101,
  GUEST_PROBE_STRAY_HYPERCALL = 102,
  /* Benchmark loops of GUEST_BENCH_ITERATIONS: one AVX-512 instruction, or
     one ud2 (for a kernel whose #UD handler skips it). */
  GUEST_BENCH_AVX512_LOOP = 200,
  GUEST_BENCH_UD2_LOOP = 201,
};
#define GUEST_BENCH_ITERATIONS 10000
/* Ids from here on: jump into the dispatcher with a forged trap address of
   (id - base). */
#define GUEST_PROBE_FORGED_TRAP_BASE 0x1000000000000000ull

#endif
