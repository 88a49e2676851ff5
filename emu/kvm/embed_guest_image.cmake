# Turns the flat guest image into a C++ array (cmake -P; INPUT, OUTPUT).
file(READ ${INPUT} hex HEX)
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${hex}")
string(LENGTH "${hex}" digits)
math(EXPR size "${digits} / 2")
file(WRITE ${OUTPUT}
  "// Generated from guest/workloads.c by embed_guest_image.cmake; do not edit.\n"
  "#include <cstddef>\n"
  "namespace avx512emu::kvm {\n"
  "extern const unsigned char kBundledGuestImage[] = {${bytes}};\n"
  "extern const size_t kBundledGuestImageSize = ${size};\n"
  "}  // namespace avx512emu::kvm\n")
