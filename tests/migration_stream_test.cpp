// Tests of the migration wire format: round trip, and every kind of damage a
// stream can take on the way (truncation at any byte, any flipped bit, a
// dropped record, foreign or newer streams, absurd lengths) is refused with
// a clear error.
#include "migration_stream.h"

#include <gtest/gtest.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstring>
#include <string>
#include <vector>

namespace {

using avx512emu::MigrationReader;
using avx512emu::MigrationRecord;
using avx512emu::MigrationWriter;

//! An in-memory file to write a stream into and read it back from.
class MemFile {
 public:
  MemFile() : fd_(memfd_create("migration-test", 0)) {}
  ~MemFile() { close(fd_); }
  int fd() const { return fd_; }
  std::vector<uint8_t> contents() const {
    std::vector<uint8_t> out(size_t(lseek(fd_, 0, SEEK_END)));
    EXPECT_EQ(pread(fd_, out.data(), out.size(), 0), ssize_t(out.size()));
    return out;
  }
  void replace(const std::vector<uint8_t>& bytes) {
    EXPECT_EQ(ftruncate(fd_, 0), 0);
    EXPECT_EQ(pwrite(fd_, bytes.data(), bytes.size(), 0), ssize_t(bytes.size()));
    lseek(fd_, 0, SEEK_SET);
  }

 private:
  int fd_;
};

struct Read {
  std::vector<std::pair<MigrationRecord, std::vector<uint8_t>>> records;
  bool complete = false;
  std::string error;
};

Read read_stream(const std::vector<uint8_t>& bytes, uint64_t max_payload = 1 << 20) {
  MemFile f;
  f.replace(bytes);
  MigrationReader r(f.fd(), max_payload);
  Read out;
  if (!r.read_header()) {
    out.error = r.error();
    return out;
  }
  for (;;) {
    MigrationRecord type{};
    std::vector<uint8_t> payload;
    const auto n = r.next(type, payload);
    if (n == MigrationReader::Next::kEnd) {
      out.complete = true;
      return out;
    }
    if (n == MigrationReader::Next::kError) {
      out.error = r.error();
      return out;
    }
    out.records.emplace_back(type, std::move(payload));
  }
}

//! A small stream: a feature map, two page records (one written in two
//! parts), a vCPU record, then the end.
std::vector<uint8_t> sample_stream(size_t* second_record_start = nullptr,
                                   size_t* second_record_end = nullptr) {
  MemFile f;
  MigrationWriter w(f.fd());
  EXPECT_TRUE(w.write_header());
  const std::string features = "{\"avx512f\":true}";
  EXPECT_TRUE(w.write_record(MigrationRecord::kFeatureMap, features.data(), features.size()));
  if (second_record_start) *second_record_start = size_t(w.bytes_written());
  std::vector<uint8_t> page(4096);
  for (size_t i = 0; i < page.size(); ++i) page[i] = uint8_t(i * 7 + 1);
  const uint64_t gpa = 0x10000;
  EXPECT_TRUE(
      w.write_record(MigrationRecord::kMemoryPages, &gpa, sizeof gpa, page.data(), page.size()));
  if (second_record_end) *second_record_end = size_t(w.bytes_written());
  EXPECT_TRUE(w.write_record(MigrationRecord::kMemoryPages, page.data(), 100));
  EXPECT_TRUE(w.write_record(MigrationRecord::kVcpuState, nullptr, 0));
  EXPECT_TRUE(w.finish());
  EXPECT_TRUE(w.error().empty());
  return f.contents();
}

TEST(MigrationStream, RoundTrip) {
  const Read r = read_stream(sample_stream());
  ASSERT_TRUE(r.complete) << r.error;
  ASSERT_EQ(r.records.size(), 4u);
  EXPECT_EQ(r.records[0].first, MigrationRecord::kFeatureMap);
  EXPECT_EQ(std::string(r.records[0].second.begin(), r.records[0].second.end()),
            "{\"avx512f\":true}");
  EXPECT_EQ(r.records[1].first, MigrationRecord::kMemoryPages);
  ASSERT_EQ(r.records[1].second.size(), 8u + 4096u);
  uint64_t gpa = 0;
  std::memcpy(&gpa, r.records[1].second.data(), 8);
  EXPECT_EQ(gpa, 0x10000u);
  for (size_t i = 0; i < 4096; ++i) ASSERT_EQ(r.records[1].second[8 + i], uint8_t(i * 7 + 1));
  EXPECT_EQ(r.records[2].second.size(), 100u);
  EXPECT_EQ(r.records[3].first, MigrationRecord::kVcpuState);
  EXPECT_TRUE(r.records[3].second.empty());
}

TEST(MigrationStream, PayloadWrittenInOddPartsReadsBackWhole) {
  // The checksum must not depend on where the writer split the payload.
  MemFile f;
  MigrationWriter w(f.fd());
  ASSERT_TRUE(w.write_header());
  const char prefix[] = "abc";
  const char body[] = "0123456789abc";
  ASSERT_TRUE(w.write_record(MigrationRecord::kVmmState, prefix, 3, body, 13));
  ASSERT_TRUE(w.finish());
  const Read r = read_stream(f.contents());
  ASSERT_TRUE(r.complete) << r.error;
  ASSERT_EQ(r.records.size(), 1u);
  EXPECT_EQ(std::string(r.records[0].second.begin(), r.records[0].second.end()),
            "abc0123456789abc");
}

TEST(MigrationStream, TruncationAtAnyByteIsAnError) {
  const std::vector<uint8_t> full = sample_stream();
  for (size_t cut = 0; cut < full.size(); ++cut) {
    const Read r = read_stream(std::vector<uint8_t>(full.begin(), full.begin() + long(cut)));
    ASSERT_FALSE(r.complete) << "cut at " << cut;
    ASSERT_FALSE(r.error.empty()) << "cut at " << cut;
  }
}

TEST(MigrationStream, AnyFlippedBitIsAnError) {
  const std::vector<uint8_t> full = sample_stream();
  for (size_t at = 0; at < full.size(); at += 3) {
    std::vector<uint8_t> bad = full;
    bad[at] ^= uint8_t(1u << (at % 8));
    const Read r = read_stream(bad);
    ASSERT_FALSE(r.complete) << "flip at " << at;
    ASSERT_FALSE(r.error.empty()) << "flip at " << at;
  }
}

TEST(MigrationStream, DroppedRecordIsCaughtByTheEndCount) {
  size_t start = 0, end = 0;
  std::vector<uint8_t> s = sample_stream(&start, &end);
  s.erase(s.begin() + long(start), s.begin() + long(end));
  const Read r = read_stream(s);
  EXPECT_FALSE(r.complete);
  EXPECT_NE(r.error.find("end record counts"), std::string::npos) << r.error;
}

TEST(MigrationStream, ForeignAndNewerStreamsAreRefused) {
  std::vector<uint8_t> s = sample_stream();
  std::vector<uint8_t> foreign = s;
  foreign[0] = 'X';
  EXPECT_NE(read_stream(foreign).error.find("bad magic"), std::string::npos);
  std::vector<uint8_t> newer = s;
  newer[8] = 2;  // version field
  EXPECT_NE(read_stream(newer).error.find("format version 2"), std::string::npos);
}

TEST(MigrationStream, OversizedRecordIsRefusedBeforeAllocating) {
  std::vector<uint8_t> s = sample_stream();
  // The first record's length field: header (16) + type/reserved (8).
  const uint64_t huge = ~0ull >> 1;
  std::memcpy(&s[16 + 8], &huge, sizeof huge);
  const Read r = read_stream(s);
  EXPECT_FALSE(r.complete);
  EXPECT_NE(r.error.find("larger than the limit"), std::string::npos) << r.error;
  // A legitimate record above the reader's limit is refused too.
  EXPECT_NE(read_stream(sample_stream(), 1000).error.find("larger than the limit"),
            std::string::npos);
}

TEST(MigrationStream, WriterReportsAClosedPeer) {
  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  close(fds[0]);
  signal(SIGPIPE, SIG_IGN);
  MigrationWriter w(fds[1]);
  EXPECT_FALSE(w.write_header());
  EXPECT_NE(w.error().find("write failed"), std::string::npos) << w.error();
  EXPECT_FALSE(w.finish());  // errors are sticky
  close(fds[1]);
}

}  // namespace
