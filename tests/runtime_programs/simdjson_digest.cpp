// Runtime test program: parses a JSON file with Debian's simdjson library and
// prints a digest of everything it read. Built without AVX-512 flags: the
// AVX-512 code is the library's own "icelake" kernel, which the tests select
// with SIMDJSON_FORCE_IMPLEMENTATION=icelake.
//
// usage: simdjson_digest FILE.json
// Prints the active implementation, the counts of every kind of value, the
// sum of the integers, the doubles' sum as a hexadecimal float (exact), a
// checksum of all keys and strings, a checksum of the minified document,
// the UTF-8 validation result, and the error codes for damaged copies of
// the document (truncated, invalid UTF-8, an unclosed string).
#include <simdjson.h>

#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>
#include <string_view>

#include "checksum.h"

namespace {

struct Digest {
  uint64_t objects = 0, arrays = 0, keys = 0, strings = 0, int64s = 0, uint64s = 0, doubles = 0,
           trues = 0, falses = 0, nulls = 0, max_depth = 0;
  uint64_t int_sum = 0;  //!< wraps: int64 and uint64 values together
  double double_sum = 0;
  uint64_t text_checksum = CHECKSUM_INIT;  //!< keys and string values, in document order
};

void add_text(Digest& d, std::string_view s) {
  const uint64_t length = s.size();
  d.text_checksum = checksum_bytes(&length, sizeof length, d.text_checksum);
  d.text_checksum = checksum_bytes(s.data(), s.size(), d.text_checksum);
}

void walk(simdjson::dom::element e, Digest& d, uint64_t depth) {
  using simdjson::dom::element_type;
  if (depth > d.max_depth) d.max_depth = depth;
  switch (e.type()) {
    case element_type::OBJECT: {
      ++d.objects;
      simdjson::dom::object object;
      if (e.get(object)) break;  // cannot fail: the type says object
      for (const simdjson::dom::key_value_pair field : object) {
        ++d.keys;
        add_text(d, field.key);
        walk(field.value, d, depth + 1);
      }
      break;
    }
    case element_type::ARRAY: {
      ++d.arrays;
      simdjson::dom::array array;
      if (e.get(array)) break;
      for (const simdjson::dom::element child : array) walk(child, d, depth + 1);
      break;
    }
    case element_type::STRING:
      ++d.strings;
      add_text(d, e.get_string().value_unsafe());
      break;
    case element_type::INT64:
      ++d.int64s;
      d.int_sum += uint64_t(e.get_int64().value_unsafe());
      break;
    case element_type::UINT64:
      ++d.uint64s;
      d.int_sum += e.get_uint64().value_unsafe();
      break;
    case element_type::DOUBLE:
      ++d.doubles;
      d.double_sum += e.get_double().value_unsafe();
      break;
    case element_type::BOOL:
      ++(e.get_bool().value_unsafe() ? d.trues : d.falses);
      break;
    case element_type::NULL_VALUE:
      ++d.nulls;
      break;
  }
}

//! Parses a damaged copy of the document and prints the error simdjson reports.
void print_parse_error(simdjson::dom::parser& parser, const char* what, std::string text) {
  const simdjson::padded_string padded(text);
  const simdjson::error_code error = parser.parse(padded).error();
  std::printf("%s: %s\n", what, simdjson::error_message(error));
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: simdjson_digest FILE.json\n");
    return 2;
  }
  simdjson::padded_string json;
  if (const simdjson::error_code error = simdjson::padded_string::load(argv[1]).get(json)) {
    std::fprintf(stderr, "simdjson_digest: cannot read %s: %s\n", argv[1],
                 simdjson::error_message(error));
    return 1;
  }
  std::printf("implementation %s\n", simdjson::get_active_implementation()->name().c_str());
  std::printf("bytes %zu utf8 %s\n", json.size(),
              simdjson::validate_utf8(json.data(), json.size()) ? "valid" : "invalid");

  simdjson::dom::parser parser;
  simdjson::dom::element root;
  if (const simdjson::error_code error = parser.parse(json).get(root)) {
    std::printf("parse error: %s\n", simdjson::error_message(error));
    return 1;
  }
  Digest d;
  walk(root, d, 0);
  std::printf("objects %" PRIu64 " arrays %" PRIu64 " keys %" PRIu64 " strings %" PRIu64
              " max depth %" PRIu64 "\n",
              d.objects, d.arrays, d.keys, d.strings, d.max_depth);
  std::printf("int64 %" PRIu64 " uint64 %" PRIu64 " double %" PRIu64 " true %" PRIu64
              " false %" PRIu64 " null %" PRIu64 "\n",
              d.int64s, d.uint64s, d.doubles, d.trues, d.falses, d.nulls);
  std::printf("integer sum %016" PRIx64 " double sum %a text checksum %016" PRIx64 "\n", d.int_sum,
              d.double_sum, d.text_checksum);

  // minify() runs the kernel's own whitespace removal (vpcompressb on icelake).
  const auto minified = std::make_unique<char[]>(json.size());
  size_t minified_size = 0;
  if (const simdjson::error_code error =
          simdjson::minify(json.data(), json.size(), minified.get(), minified_size)) {
    std::printf("minify error: %s\n", simdjson::error_message(error));
    return 1;
  }
  std::printf("minified %zu bytes checksum %016" PRIx64 "\n", minified_size,
              checksum_bytes(minified.get(), minified_size, CHECKSUM_INIT));

  const std::string text(json.data(), json.size());
  print_parse_error(parser, "truncated", text.substr(0, text.size() * 2 / 3));
  std::string bad_utf8 = text;
  bad_utf8[bad_utf8.find('"', bad_utf8.size() / 2) + 1] = char(0xc0);  // an overlong lead byte
  print_parse_error(parser, "invalid utf-8", bad_utf8);
  print_parse_error(parser, "unclosed string", text.substr(0, text.find('"', text.size() / 3) + 1));
  return 0;
}
