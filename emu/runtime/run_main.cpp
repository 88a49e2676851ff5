// Owns avx512emu-run, a standalone `avx512emu run` (same code as the CLI's
// subcommand) for tests and for hosts that install only the runtime.
#include "run_command.h"

int main(int argc, char** argv) {
  return avx512emu::run_command(argc - 1, argv + 1);
}
