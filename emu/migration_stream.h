// Owns the wire format of a VM migration (and of the state a VMM hands to
// its upgraded self): a header, then checksummed records, then an end record
// that counts them. The reader trusts nothing: every length is bounded
// before anything is allocated, every record's checksum is checked before
// its payload is used, and a stream that stops early is an error, never a
// partial success.
//
//   header  : magic "A5EMIGRT" (8) | format version u32 | flags u32 (zero)
//   record  : type u32 | zero u32 | payload length u64 | payload | checksum
//             (jit/checksum.h) of the
//             type, length and payload (u64)
//   end     : a record of type kEnd whose payload is the number of records
//             before it (u64), so a stream cut between records is caught
//
// All integers are little-endian (both ends are x86-64).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace avx512emu {

inline constexpr char kMigrationMagic[8] = {'A', '5', 'E', 'M', 'I', 'G', 'R', 'T'};
inline constexpr uint32_t kMigrationFormatVersion = 1;

//! What a record holds. The numbering is part of the format: append only.
enum class MigrationRecord : uint32_t {
  kFeatureMap = 1,   //!< The source's CPUID feature dump (featuremap json).
  kMemoryPages = 2,  //!< u64 guest-physical start, then whole 4 KiB pages.
  kVcpuState = 3,    //!< The vCPU registers, sregs, XCRs, events, MSRs, XSAVE.
  kVmmState = 4,     //!< VMM-side state (adapter counters, in-flight miss).
  kRoundDone = 5,    //!< End of one pre-copy round (u64 pages sent).
  kEnd = 6,          //!< Last record: u64 number of records before it.
  kVmConfig = 7,     //!< u64 guest memory bytes, u64 workload id, u8 source runs natively.
  kVerdict = 8,      //!< Destination to source: u8 accepted, then a UTF-8 reason.
};
const char* migration_record_name(MigrationRecord type);

//! Writes a stream to a file descriptor (socket, pipe, memfd). Errors are
//! sticky: after the first failed write every call returns false and
//! error() says what happened.
class MigrationWriter {
 public:
  explicit MigrationWriter(int fd) : fd_(fd) {}
  bool write_header();
  bool write_record(MigrationRecord type, const void* payload, size_t size);
  //! The same, with the payload in two parts (a small prefix and a body),
  //! so pages are sent without first being copied behind their address.
  bool write_record(MigrationRecord type, const void* prefix, size_t prefix_size, const void* body,
                    size_t body_size);
  //! Writes the end record; the stream is complete after it.
  bool finish();
  const std::string& error() const { return error_; }
  uint64_t bytes_written() const { return bytes_; }

 private:
  bool write_all(const void* data, size_t size);
  int fd_;
  uint64_t records_ = 0;
  uint64_t bytes_ = 0;
  std::string error_;
};

//! Reads a stream, one record at a time.
class MigrationReader {
 public:
  //! `max_payload` bounds every record: a longer one is refused before
  //! anything is allocated.
  MigrationReader(int fd, uint64_t max_payload) : fd_(fd), max_payload_(max_payload) {}
  //! Reads and checks the header. False with error() set on a foreign or
  //! newer stream, or one that ends inside the header.
  bool read_header();
  enum class Next { kRecord, kEnd, kError };
  //! The next record into `type` and `payload`. kEnd after a valid end
  //! record; kError (error() set) on truncation, a bad checksum, an unknown
  //! type, an oversized length or a record count that does not match.
  Next next(MigrationRecord& type, std::vector<uint8_t>& payload);
  const std::string& error() const { return error_; }
  uint64_t bytes_read() const { return bytes_; }

 private:
  //! Reads exactly `size` bytes; false at end of stream or on an error.
  bool read_all(void* data, size_t size, const char* what);
  int fd_;
  uint64_t max_payload_;
  uint64_t records_ = 0;
  uint64_t bytes_ = 0;
  std::string error_;
};

}  // namespace avx512emu
