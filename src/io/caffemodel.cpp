#include "io/caffemodel.hpp"

#include <vector>

#include "core/errors.hpp"
#include "core/net.hpp"
#include "io/prototxt.hpp"
#include "io/upgrade.hpp"

namespace engine {

namespace {

constexpr int kFirstEngineNumber = 1000;

}  // namespace

void strip_engine_fields(google::protobuf::Message* message) {
  namespace pb = google::protobuf;
  const pb::Descriptor* descriptor = message->GetDescriptor();
  const pb::Reflection* reflection = message->GetReflection();
  // Caffe itself numbered a few fields of its legacy layer messages above 1000.
  const bool caffe_owns_high_numbers = descriptor == V1LayerParameter::descriptor() ||
                                       descriptor == V0LayerParameter::descriptor();
  std::vector<const pb::FieldDescriptor*> fields;
  reflection->ListFields(*message, &fields);
  for (const pb::FieldDescriptor* field : fields) {
    if (field->number() >= kFirstEngineNumber && !caffe_owns_high_numbers) {
      reflection->ClearField(message, field);
      continue;
    }
    if (field->cpp_type() == pb::FieldDescriptor::CPPTYPE_ENUM) {
      if (!field->is_repeated()) {
        if (reflection->GetEnumValue(*message, field) >= kFirstEngineNumber) {
          reflection->ClearField(message, field);
        }
        continue;
      }
      std::vector<int> kept;
      const int size = reflection->FieldSize(*message, field);
      for (int i = 0; i < size; ++i) {
        const int value = reflection->GetRepeatedEnumValue(*message, field, i);
        if (value < kFirstEngineNumber) kept.push_back(value);
      }
      if (static_cast<int>(kept.size()) == size) continue;
      reflection->ClearField(message, field);
      for (int value : kept) reflection->AddEnumValue(message, field, value);
      continue;
    }
    if (field->cpp_type() != pb::FieldDescriptor::CPPTYPE_MESSAGE) continue;
    if (field->is_repeated()) {
      const int size = reflection->FieldSize(*message, field);
      for (int i = 0; i < size; ++i) {
        strip_engine_fields(reflection->MutableRepeatedMessage(message, field, i));
      }
    } else {
      strip_engine_fields(reflection->MutableMessage(message, field));
    }
  }
  reflection->MutableUnknownFields(message)->Clear();
}

NetParameter read_caffemodel(const std::string& path) {
  NetParameter param = read_net_binary_file(path);
  ENGINE_REQUIRE(param.layer_size() > 0,
                 path << ": holds no layers; not a weights file (.caffemodel), or an empty one");
  return param;
}

void write_caffemodel(NetParameter param, const std::string& path) {
  strip_engine_fields(&param);
  write_binary_file(param, path);
}

void write_caffemodel(const Net& net, const std::string& path, bool write_diff) {
  NetParameter param;
  net.to_proto(&param, write_diff);
  write_caffemodel(std::move(param), path);
}

void copy_weights_from_file(const std::string& path, Net* net) {
  const NetParameter weights = read_caffemodel(path);
  try {
    net->copy_trained_layers_from(weights);
  } catch (const Error& error) {
    ENGINE_FAIL(path << ": " << error.what());
  }
}

}  // namespace engine
