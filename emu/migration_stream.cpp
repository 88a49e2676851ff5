// Owns the migration wire format (see migration_stream.h).
#include "migration_stream.h"

#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "checksum.h"

namespace avx512emu {
namespace {

struct StreamHeader {
  char magic[8];
  uint32_t version;
  uint32_t flags;
};
static_assert(sizeof(StreamHeader) == 16);

struct RecordHead {
  uint32_t type;
  uint32_t reserved;  // zero; keeps the length 8-byte aligned
  uint64_t length;
};
static_assert(sizeof(RecordHead) == 16);

uint64_t record_checksum(const RecordHead& head, const void* a, size_t a_size, const void* b,
                         size_t b_size) {
  // One running checksum over the parts: the writer may split a payload
  // differently from the reader, which sees it whole.
  return jit::Checksum64().add(&head, sizeof head).add(a, a_size).add(b, b_size).value();
}

bool known_type(uint32_t t) {
  return t >= uint32_t(MigrationRecord::kFeatureMap) && t <= uint32_t(MigrationRecord::kVerdict);
}

}  // namespace

const char* migration_record_name(MigrationRecord type) {
  switch (type) {
    case MigrationRecord::kFeatureMap:
      return "feature map";
    case MigrationRecord::kMemoryPages:
      return "memory pages";
    case MigrationRecord::kVcpuState:
      return "vCPU state";
    case MigrationRecord::kVmmState:
      return "VMM state";
    case MigrationRecord::kRoundDone:
      return "end of round";
    case MigrationRecord::kEnd:
      return "end of stream";
    case MigrationRecord::kVmConfig:
      return "VM configuration";
    case MigrationRecord::kVerdict:
      return "verdict";
  }
  return "unknown record";
}

// ---- Writer -------------------------------------------------------------------------

bool MigrationWriter::write_all(const void* data, size_t size) {
  if (!error_.empty()) return false;
  const uint8_t* p = static_cast<const uint8_t*>(data);
  while (size > 0) {
    const ssize_t n = ::write(fd_, p, size);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      error_ = std::string("migration stream: write failed: ") +
               (n < 0 ? std::strerror(errno) : "no progress");
      return false;
    }
    p += n;
    size -= size_t(n);
    bytes_ += uint64_t(n);
  }
  return true;
}

bool MigrationWriter::write_header() {
  StreamHeader h{};
  std::memcpy(h.magic, kMigrationMagic, sizeof h.magic);
  h.version = kMigrationFormatVersion;
  return write_all(&h, sizeof h);
}

bool MigrationWriter::write_record(MigrationRecord type, const void* payload, size_t size) {
  return write_record(type, payload, size, nullptr, 0);
}

bool MigrationWriter::write_record(MigrationRecord type, const void* prefix, size_t prefix_size,
                                   const void* body, size_t body_size) {
  const RecordHead head{uint32_t(type), 0, uint64_t(prefix_size) + body_size};
  const uint64_t sum = record_checksum(head, prefix, prefix_size, body, body_size);
  const bool ok = write_all(&head, sizeof head) && write_all(prefix, prefix_size) &&
                  write_all(body, body_size) && write_all(&sum, sizeof sum);
  if (ok) ++records_;
  return ok;
}

bool MigrationWriter::finish() {
  const uint64_t count = records_;
  return write_record(MigrationRecord::kEnd, &count, sizeof count);
}

// ---- Reader -------------------------------------------------------------------------

bool MigrationReader::read_all(void* data, size_t size, const char* what) {
  uint8_t* p = static_cast<uint8_t*>(data);
  while (size > 0) {
    const ssize_t n = ::read(fd_, p, size);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      error_ = std::string("migration stream: ") +
               (n < 0 ? std::string("read failed: ") + std::strerror(errno)
                      : std::string("the stream ends inside ") + what) +
               " (after " + std::to_string(bytes_) + " bytes)";
      return false;
    }
    p += n;
    size -= size_t(n);
    bytes_ += uint64_t(n);
  }
  return true;
}

bool MigrationReader::read_header() {
  StreamHeader h{};
  if (!read_all(&h, sizeof h, "the header")) return false;
  if (std::memcmp(h.magic, kMigrationMagic, sizeof h.magic) != 0) {
    error_ = "migration stream: not an avx512emu migration stream (bad magic)";
    return false;
  }
  if (h.version != kMigrationFormatVersion) {
    error_ = "migration stream: format version " + std::to_string(h.version) +
             ", this avx512emu reads version " + std::to_string(kMigrationFormatVersion);
    return false;
  }
  if (h.flags != 0) {
    error_ = "migration stream: unknown header flags " + std::to_string(h.flags) +
             " (version 1 defines none)";
    return false;
  }
  return true;
}

MigrationReader::Next MigrationReader::next(MigrationRecord& type, std::vector<uint8_t>& payload) {
  if (!error_.empty()) return Next::kError;
  RecordHead head{};
  if (!read_all(&head, sizeof head, "a record header")) return Next::kError;
  const std::string where = " (record " + std::to_string(records_) + ")";
  if (!known_type(head.type) || head.reserved != 0) {
    error_ = "migration stream: unknown record type " + std::to_string(head.type) + where;
    return Next::kError;
  }
  if (head.length > max_payload_) {
    error_ = "migration stream: a " + std::to_string(head.length) + "-byte record is larger than " +
             "the limit of " + std::to_string(max_payload_) + where;
    return Next::kError;
  }
  payload.resize(size_t(head.length));
  uint64_t sum = 0;
  if (!read_all(payload.data(), payload.size(), "a record") ||
      !read_all(&sum, sizeof sum, "a record checksum"))
    return Next::kError;
  if (sum != record_checksum(head, payload.data(), payload.size(), nullptr, 0)) {
    error_ = std::string("migration stream: checksum mismatch in a ") +
             migration_record_name(MigrationRecord(head.type)) + " record" + where;
    return Next::kError;
  }
  type = MigrationRecord(head.type);
  if (type == MigrationRecord::kEnd) {
    uint64_t count = ~0ull;
    if (payload.size() == sizeof count) std::memcpy(&count, payload.data(), sizeof count);
    if (count != records_) {
      error_ = "migration stream: the end record counts " + std::to_string(count) + " records, " +
               std::to_string(records_) + " arrived";
      return Next::kError;
    }
    return Next::kEnd;
  }
  ++records_;
  return Next::kRecord;
}

}  // namespace avx512emu
