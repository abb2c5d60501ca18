// Weights files: exact round trips, Caffe's legacy forms, partial and mismatched files, damaged
// files, files over protobuf's 64 MB default limit, and nothing of ours in what we write.
#include "io/caffemodel.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>

#include "core/context.hpp"
#include "core/net.hpp"
#include "gradient_checker.hpp"
#include "io/prototxt.hpp"

namespace engine {
namespace {

using namespace engine::testing;

namespace fs = std::filesystem;

class Caffemodel : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("engine_caffemodel_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }

  fs::path dir_;
};

NetParameter parse_net(const std::string& text, Phase phase = TEST) {
  NetParameter param;
  parse_text(text, "<test net>", &param);
  param.mutable_state()->set_phase(phase);
  return param;
}

// A conv and two inner products with random weights; inner_product_param.engine (number 1000,
// ours) and a BatchNorm, whose param specs the layer adds itself, go into the file too.
const char* kNet = R"(
name: "small"
layer { name: "in" type: "Input" top: "x" input_param { shape { dim: 2 dim: 3 dim: 6 dim: 6 } } }
layer { name: "conv" type: "Convolution" bottom: "x" top: "c"
  convolution_param { num_output: 4 kernel_size: 3 engine: CAFFE
    weight_filler { type: "gaussian" std: 0.5 } bias_filler { type: "gaussian" std: 0.5 } } }
layer { name: "bn" type: "BatchNorm" bottom: "c" top: "c" }
layer { name: "ip1" type: "InnerProduct" bottom: "c" top: "h"
  inner_product_param { num_output: 5 engine: CAFFE
    weight_filler { type: "gaussian" std: 0.5 } bias_filler { type: "gaussian" std: 0.5 } } }
layer { name: "ip2" type: "InnerProduct" bottom: "h" top: "y"
  inner_product_param { num_output: 3 weight_filler { type: "uniform" } } }
)";

void expect_same_params(const Net& a, const Net& b) {
  ASSERT_EQ(a.params().size(), b.params().size());
  for (size_t i = 0; i < a.params().size(); ++i) {
    const Blob& x = *a.params()[i];
    const Blob& y = *b.params()[i];
    ASSERT_EQ(x.shape(), y.shape()) << a.param_display_names()[i];
    EXPECT_EQ(std::memcmp(x.cpu_data(), y.cpu_data(), sizeof(float) * x.count()), 0)
        << a.param_display_names()[i] << " differs";
  }
}

TEST_F(Caffemodel, RoundTripIsExact) {
  Context::set_seed(1);
  Net trained(parse_net(kNet));
  // Give the BatchNorm statistics values too.
  for (const auto& blob : trained.layer_by_name("bn").blobs()) fill_uniform(*blob, 0.5f, 2.0f);
  write_caffemodel(trained, path("w.caffemodel"));

  Context::set_seed(2);
  Net fresh(parse_net(kNet));
  copy_weights_from_file(path("w.caffemodel"), &fresh);
  expect_same_params(trained, fresh);
  // And the loaded net writes the same bytes.
  write_caffemodel(fresh, path("again.caffemodel"));
  EXPECT_EQ(read_file(path("w.caffemodel")), read_file(path("again.caffemodel")));
}

// Walks a message: every field set, and every enum value, is numbered below 1000, and nothing
// unknown is left.
void expect_only_caffe_fields(const google::protobuf::Message& message, const std::string& where) {
  namespace pb = google::protobuf;
  const pb::Reflection* reflection = message.GetReflection();
  EXPECT_EQ(reflection->GetUnknownFields(message).field_count(), 0) << where;
  std::vector<const pb::FieldDescriptor*> fields;
  reflection->ListFields(message, &fields);
  for (const pb::FieldDescriptor* field : fields) {
    const std::string at = where + "." + field->name();
    EXPECT_LT(field->number(), 1000) << at;
    if (field->cpp_type() == pb::FieldDescriptor::CPPTYPE_ENUM) {
      const int n = field->is_repeated() ? reflection->FieldSize(message, field) : 1;
      for (int i = 0; i < n; ++i) {
        const int value = field->is_repeated() ? reflection->GetRepeatedEnumValue(message, field, i)
                                               : reflection->GetEnumValue(message, field);
        EXPECT_LT(value, 1000) << at;
      }
    }
    if (field->cpp_type() != pb::FieldDescriptor::CPPTYPE_MESSAGE) continue;
    if (field->is_repeated()) {
      for (int i = 0; i < reflection->FieldSize(message, field); ++i) {
        expect_only_caffe_fields(reflection->GetRepeatedMessage(message, field, i),
                                 at + "[" + std::to_string(i) + "]");
      }
    } else {
      expect_only_caffe_fields(reflection->GetMessage(message, field), at);
    }
  }
}

TEST_F(Caffemodel, WrittenFilesHoldOnlyCaffeFields) {
  Net net(parse_net(kNet));
  NetParameter direct;
  net.to_proto(&direct);
  ASSERT_TRUE(direct.layer(3).inner_product_param().has_engine())
      << "the test needs a field >= 1000 in what the net writes";
  write_caffemodel(net, path("w.caffemodel"));
  NetParameter written;
  read_binary_file(path("w.caffemodel"), &written);
  expect_only_caffe_fields(written, "net");
  // Caffe's own fields stay: types, param specs, the convolution's engine.
  EXPECT_EQ(written.layer(1).convolution_param().engine(), ConvolutionParameter::CAFFE);
  EXPECT_EQ(written.layer(2).param_size(), 3);
  EXPECT_EQ(written.layer(3).blobs_size(), 2);
}

TEST_F(Caffemodel, StripKeepsCaffesOwnHighNumbers) {
  NetParameter param = parse_net(R"(
    layer { name: "c" type: "Convolution" convolution_param { engine: ONEDNN num_output: 2 } }
    layer { name: "d" type: "Data" transform_param { scale: 2 lighting_std: 0.1 ten_crop: true }
            data_param { threads: 3 batch_size: 4 } }
    layer { name: "p" type: "Pooling" pooling_param { engine: ONEDNN kernel_size: 2 } }
    layers { name: "v1" param: "shared" blob_share_mode: PERMISSIVE
             layer { name: "v0" hdf5_output_param { file_name: "f" } } })");
  strip_engine_fields(&param);
  EXPECT_FALSE(param.layer(0).convolution_param().has_engine());
  EXPECT_EQ(param.layer(0).convolution_param().num_output(), 2u);
  EXPECT_FALSE(param.layer(1).transform_param().has_lighting_std());
  EXPECT_FALSE(param.layer(1).transform_param().has_ten_crop());
  EXPECT_EQ(param.layer(1).transform_param().scale(), 2.0f);
  EXPECT_FALSE(param.layer(1).data_param().has_threads());
  EXPECT_EQ(param.layer(1).data_param().batch_size(), 4u);
  EXPECT_FALSE(param.layer(2).pooling_param().has_engine());
  // V1's param (1001) and blob_share_mode (1002) and V0's hdf5_output_param (1001) are Caffe's.
  EXPECT_EQ(param.layers(0).param(0), "shared");
  EXPECT_EQ(param.layers(0).blob_share_mode_size(), 1);
  EXPECT_EQ(param.layers(0).layer().hdf5_output_param().file_name(), "f");
}

TEST_F(Caffemodel, LegacyLayersAndShapesLoad) {
  // A V1 weights file: `layers` with enum types, 4-D num/channels/height/width blobs (the
  // inner product's 3 x 4 weight as 1 x 1 x 3 x 4, its bias as 1 x 1 x 1 x 3), double_data,
  // and the input names Caffe wrote.
  NetParameter v1 = parse_net(R"(
    name: "old" input: "x"
    layers { name: "ip" type: INNER_PRODUCT bottom: "x" top: "y"
      blobs { num: 1 channels: 1 height: 3 width: 4
              data: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12] }
      blobs { num: 1 channels: 1 height: 1 width: 3 double_data: [0.5, -0.5, 0.25] } }
    layers { name: "gone" type: RELU bottom: "y" top: "y" })");
  write_binary_file(v1, path("v1.caffemodel"));

  Net net(parse_net(R"(
    layer { name: "in" type: "Input" top: "x" input_param { shape { dim: 2 dim: 4 } } }
    layer { name: "ip" type: "InnerProduct" bottom: "x" top: "y"
            inner_product_param { num_output: 3 } })"));
  copy_weights_from_file(path("v1.caffemodel"), &net);
  const auto& blobs = net.layer_by_name("ip").blobs();
  EXPECT_EQ(data_of(*blobs[0]), (std::vector<float>{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}));
  EXPECT_EQ(data_of(*blobs[1]), (std::vector<float>{0.5f, -0.5f, 0.25f}));
}

TEST_F(Caffemodel, LegacyShapesMatchFromTheEnd) {
  auto legacy = [](int n, int c, int h, int w) {
    BlobProto proto;
    proto.set_num(n);
    proto.set_channels(c);
    proto.set_height(h);
    proto.set_width(w);
    return proto;
  };
  EXPECT_TRUE(Blob({3, 4}).shape_equals(legacy(1, 1, 3, 4)));
  EXPECT_TRUE(Blob({3}).shape_equals(legacy(1, 1, 1, 3)));
  EXPECT_TRUE(Blob({2, 3, 4, 5}).shape_equals(legacy(2, 3, 4, 5)));
  EXPECT_TRUE(Blob(std::vector<int>{}).shape_equals(legacy(1, 1, 1, 1)));
  EXPECT_FALSE(Blob({4, 3}).shape_equals(legacy(1, 1, 3, 4)));
  EXPECT_FALSE(Blob({3, 4}).shape_equals(legacy(2, 1, 3, 4)));
  EXPECT_FALSE(Blob({1, 1, 1, 1, 3}).shape_equals(legacy(1, 1, 1, 3)));
  // Shapes given as `shape` match exactly.
  BlobProto modern;
  modern.mutable_shape()->add_dim(1);
  modern.mutable_shape()->add_dim(3);
  EXPECT_FALSE(Blob({3}).shape_equals(modern));
  // A 0-d blob written and read back stays 0-d.
  Blob scalar{std::vector<int>{}};
  scalar.mutable_cpu_data()[0] = 4;
  BlobProto written;
  scalar.to_proto(&written);
  Blob back;
  back.from_proto(written);
  EXPECT_EQ(back.num_axes(), 0);
  EXPECT_EQ(back.cpu_data()[0], 4);
}

TEST_F(Caffemodel, ExtraLayersAreIgnoredAndMissingOnesKeepTheirValues) {
  Context::set_seed(3);
  Net trained(parse_net(kNet));
  NetParameter weights;
  trained.to_proto(&weights);
  // Drop ip2 from the file and add a layer the net does not have.
  weights.mutable_layer()->DeleteSubrange(4, 1);
  LayerParameter* extra = weights.add_layer();
  extra->set_name("not_in_the_net");
  extra->set_type("InnerProduct");
  Blob({7, 7}).to_proto(extra->add_blobs());
  write_caffemodel(weights, path("partial.caffemodel"));

  Context::set_seed(4);
  Net net(parse_net(kNet));
  const std::vector<float> ip2_before = data_of(*net.layer_by_name("ip2").blobs()[0]);
  copy_weights_from_file(path("partial.caffemodel"), &net);
  EXPECT_EQ(data_of(*net.layer_by_name("ip2").blobs()[0]), ip2_before);
  EXPECT_EQ(data_of(*net.layer_by_name("ip1").blobs()[0]),
            data_of(*trained.layer_by_name("ip1").blobs()[0]));
}

TEST_F(Caffemodel, MismatchesNameTheFileLayerBlobAndShapes) {
  Net net(parse_net(kNet));
  NetParameter weights;
  net.to_proto(&weights);
  NetParameter wrong_shape = weights;
  Blob({5, 99}).to_proto(wrong_shape.mutable_layer(3)->mutable_blobs(0));
  write_caffemodel(wrong_shape, path("shape.caffemodel"));
  expect_error([&] { copy_weights_from_file(path("shape.caffemodel"), &net); },
               {path("shape.caffemodel"), "layer ip1 (InnerProduct)", "parameter blob 0",
                "5 x 99", "5 x 64"});

  NetParameter wrong_count = weights;
  wrong_count.mutable_layer(3)->mutable_blobs()->RemoveLast();
  write_caffemodel(wrong_count, path("count.caffemodel"));
  expect_error([&] { copy_weights_from_file(path("count.caffemodel"), &net); },
               {path("count.caffemodel"), "layer ip1 (InnerProduct)", "1 blob(s)", "has 2"});
}

TEST_F(Caffemodel, DamagedFilesFailNamingTheFile) {
  Net net(parse_net(kNet));
  write_caffemodel(net, path("w.caffemodel"));
  const std::string bytes = read_file(path("w.caffemodel"));

  write_file_atomic(path("truncated.caffemodel"), bytes.substr(0, bytes.size() / 2));
  expect_error([&] { copy_weights_from_file(path("truncated.caffemodel"), &net); },
               {path("truncated.caffemodel"), "truncated or corrupt"});

  std::string corrupt = bytes;
  std::memset(&corrupt[0], 0xff, 12);
  write_file_atomic(path("corrupt.caffemodel"), corrupt);
  expect_error([&] { copy_weights_from_file(path("corrupt.caffemodel"), &net); },
               {path("corrupt.caffemodel"), "truncated or corrupt"});

  write_file_atomic(path("empty.caffemodel"), "");
  expect_error([&] { copy_weights_from_file(path("empty.caffemodel"), &net); },
               {path("empty.caffemodel"), "holds no layers"});

  expect_error([&] { copy_weights_from_file(path("missing.caffemodel"), &net); },
               {path("missing.caffemodel"), "cannot open"});
}

TEST_F(Caffemodel, FilesOverProtobufsDefaultLimitLoad) {
  // 4200 x 4200 float weights: 70.6 MB, over protobuf's default 64 MB message limit.
  const std::string text = R"(
    layer { name: "in" type: "Input" top: "x" input_param { shape { dim: 1 dim: 4200 } } }
    layer { name: "big" type: "InnerProduct" bottom: "x" top: "y"
      inner_product_param { num_output: 4200 weight_filler { type: "constant" value: VALUE } } })";
  auto with_value = [&](const std::string& value) {
    std::string t = text;
    return parse_net(t.replace(t.find("VALUE"), 5, value));
  };
  {
    Net big(with_value("0.5"));
    float* weights = big.layer_by_name("big").blobs()[0]->mutable_cpu_data();
    weights[0] = -1;
    weights[4200 * 4200 - 1] = 3;
    write_caffemodel(big, path("big.caffemodel"));
  }
  ASSERT_GT(fs::file_size(path("big.caffemodel")), 64u << 20);
  Net loaded(with_value("0"));
  copy_weights_from_file(path("big.caffemodel"), &loaded);
  const Blob& weights = *loaded.layer_by_name("big").blobs()[0];
  EXPECT_EQ(weights.cpu_data()[0], -1);
  EXPECT_EQ(weights.cpu_data()[1], 0.5f);
  EXPECT_EQ(weights.cpu_data()[4200 * 2100], 0.5f);
  EXPECT_EQ(weights.cpu_data()[4200 * 4200 - 1], 3);
  fs::remove(path("big.caffemodel"));
}

}  // namespace
}  // namespace engine
