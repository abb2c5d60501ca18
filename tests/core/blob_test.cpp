#include <gtest/gtest.h>

#include "core/blob.hpp"
#include "core/context.hpp"
#include "core/errors.hpp"

namespace engine {
namespace {

TEST(Blob, ShapeCountAndAxes) {
  Blob blob({2, 3, 4, 5});
  EXPECT_EQ(blob.count(), 120);
  EXPECT_EQ(blob.count(1), 60);
  EXPECT_EQ(blob.count(1, 3), 12);
  EXPECT_EQ(blob.shape(-1), 5);
  EXPECT_EQ(blob.canonical_axis(-4), 0);
  EXPECT_EQ(blob.num(), 2);
  EXPECT_EQ(blob.channels(), 3);
  EXPECT_EQ(blob.height(), 4);
  EXPECT_EQ(blob.width(), 5);
  EXPECT_THROW(blob.canonical_axis(4), Error);
  EXPECT_THROW(blob.canonical_axis(-5), Error);
  EXPECT_THROW(blob.reshape({2, -1}), Error);
}

TEST(Blob, ShrinkingKeepsTheAllocation) {
  Blob blob({4, 10});
  float* data = blob.mutable_cpu_data();
  data[0] = 42;
  blob.reshape({2, 10});
  EXPECT_EQ(blob.mutable_cpu_data(), data);
  EXPECT_EQ(blob.cpu_data()[0], 42);
  blob.reshape({4, 10});
  EXPECT_EQ(blob.mutable_cpu_data(), data) << "growing back within the capacity";
  blob.reshape({5, 10});
  EXPECT_EQ(blob.count(), 50);
}

TEST(Blob, ProtoRoundTripAndLegacyShape) {
  Blob blob({2, 3});
  for (int i = 0; i < 6; ++i) blob.mutable_cpu_data()[i] = i * 0.5f;
  BlobProto proto;
  blob.to_proto(&proto);
  Blob copy;
  copy.from_proto(proto);
  EXPECT_EQ(copy.shape(), blob.shape());
  for (int i = 0; i < 6; ++i) EXPECT_EQ(copy.cpu_data()[i], i * 0.5f);

  BlobProto legacy;
  legacy.set_num(1);
  legacy.set_channels(2);
  legacy.set_height(1);
  legacy.set_width(3);
  for (int i = 0; i < 6; ++i) legacy.add_double_data(i);
  Blob from_legacy;
  from_legacy.from_proto(legacy);
  EXPECT_EQ(from_legacy.shape(), (std::vector<int>{1, 2, 1, 3}));
  EXPECT_EQ(from_legacy.cpu_data()[5], 5);

  BlobProto short_data = proto;
  short_data.mutable_data()->RemoveLast();
  try {
    copy.from_proto(short_data);
    FAIL();
  } catch (const Error& error) {
    EXPECT_NE(std::string(error.what()).find("holds 5 values"), std::string::npos) << error.what();
  }
  Blob other({3, 2});
  EXPECT_THROW(other.from_proto(proto, false), Error);
}

TEST(Blob, UpdateSubtractsTheDiff) {
  Blob blob({3});
  for (int i = 0; i < 3; ++i) {
    blob.mutable_cpu_data()[i] = 10;
    blob.mutable_cpu_diff()[i] = i;
  }
  blob.update();
  EXPECT_EQ(blob.cpu_data()[2], 8);
  EXPECT_DOUBLE_EQ(blob.sum_of_squares_diff(), 5);
}

TEST(SyncedMemory, HeadFollowsAccess) {
  SyncedMemory memory(16);
  EXPECT_EQ(memory.head(), SyncedMemory::Head::UNINITIALIZED);
  const float* zeros = static_cast<const float*>(memory.host_data());
  EXPECT_EQ(zeros[3], 0) << "fresh memory reads as zeros";
  EXPECT_EQ(memory.head(), SyncedMemory::Head::AT_HOST);
  EXPECT_EQ(memory.transfers(), 0u);
}

TEST(SyncedMemory, StampsChangeWithEveryWrite) {
  SyncedMemory a(16), b(16);
  EXPECT_NE(a.stamp(), b.stamp()) << "no two memories share a stamp";
  const uint64_t fresh = a.stamp();
  a.host_data();
  EXPECT_FALSE(a.changed_since(fresh)) << "reading changes nothing";
  a.mutable_host_data();
  EXPECT_TRUE(a.changed_since(fresh));
  const uint64_t written = a.stamp();
  a.resize(8);
  EXPECT_TRUE(a.changed_since(written));
  const uint64_t resized = a.stamp();
  EXPECT_FALSE(a.changed_since(resized));
  a.expose_host();
  EXPECT_TRUE(a.changed_since(a.stamp())) << "values handed out may change at any time";
}

TEST(SyncedMemory, DeviceRoundTrip) {
  if (Context::device_count() == 0) GTEST_SKIP() << "no CUDA device on this machine";
  SyncedMemory memory(4 * sizeof(float));
  float* host = static_cast<float*>(memory.mutable_host_data());
  for (int i = 0; i < 4; ++i) host[i] = i + 1;
  memory.device_data();
  EXPECT_EQ(memory.head(), SyncedMemory::Head::SYNCED);
  memory.mutable_device_data();
  EXPECT_EQ(memory.head(), SyncedMemory::Head::AT_DEVICE);
  EXPECT_EQ(static_cast<const float*>(memory.host_data())[3], 4);
  EXPECT_EQ(memory.transfers(), 2u);
}

}  // namespace
}  // namespace engine
