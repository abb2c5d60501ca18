#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <thread>

#include "core/errors.hpp"
#include "engine.pb.h"
#include "io/prototxt.hpp"

namespace engine {
namespace {

namespace fs = std::filesystem;

fs::path temp_path(const std::string& name) {
  return fs::temp_directory_path() / ("engine_io_" + std::to_string(::getpid()) + "_" + name);
}

TEST(Prototxt, BinaryRoundTripAndCorruptFiles) {
  NetParameter net;
  net.set_name("round");
  LayerParameter* layer = net.add_layer();
  layer->set_name("ip");
  layer->set_type("InnerProduct");
  BlobProto* blob = layer->add_blobs();
  for (int i = 0; i < 1000; ++i) blob->add_data(i * 0.25f);
  const std::string file = temp_path("round.caffemodel");
  write_binary_file(net, file);
  NetParameter back;
  read_binary_file(file, &back);
  EXPECT_EQ(back.SerializeAsString(), net.SerializeAsString());

  // Truncated: the error names the file and the message type.
  const std::string bytes = read_file(file);
  write_file_atomic(file, bytes.substr(0, bytes.size() / 2));
  try {
    read_binary_file(file, &back);
    FAIL() << "a truncated file must not load";
  } catch (const Error& error) {
    EXPECT_NE(std::string(error.what()).find(file), std::string::npos) << error.what();
    EXPECT_NE(std::string(error.what()).find("NetParameter"), std::string::npos) << error.what();
  }
  fs::remove(file);
}

TEST(Prototxt, TextRoundTrip) {
  SolverParameter solver;
  solver.set_base_lr(0.01f);
  solver.add_test_iter(5);
  solver.set_lr_policy("plateau");
  solver.set_plateau_output("accuracy");
  const std::string file = temp_path("solver.prototxt");
  write_text_file(solver, file);
  SolverParameter back;
  read_text_file(file, &back);
  EXPECT_EQ(back.SerializeAsString(), solver.SerializeAsString());
  fs::remove(file);
}

// A writer killed at any moment leaves either the old file or the new one, whole.
TEST(Prototxt, AtomicWritesSurviveAKill) {
  const std::string file = temp_path("atomic.bin");
  const std::string old_contents(8 << 20, 'a');
  const std::string new_contents(8 << 20, 'b');
  write_file_atomic(file, old_contents);
  for (int attempt = 0; attempt < 5; ++attempt) {
    const pid_t child = ::fork();
    if (child == 0) {
      for (;;) {
        write_file_atomic(file, new_contents);
        write_file_atomic(file, old_contents);
      }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20 + 37 * attempt));
    ::kill(child, SIGKILL);
    ::waitpid(child, nullptr, 0);
    const std::string contents = read_file(file);
    EXPECT_TRUE(contents == old_contents || contents == new_contents)
        << "a killed write left " << contents.size() << " bytes";
  }
  // Leftover temporaries of killed writers do not replace the file.
  for (const auto& entry : fs::directory_iterator(fs::temp_directory_path())) {
    if (entry.path().string().rfind(file + ".tmp", 0) == 0) fs::remove(entry.path());
  }
  fs::remove(file);
}

TEST(Prototxt, UnwritableTargetIsAnError) {
  try {
    write_file_atomic("/nonexistent-folder/x.caffemodel", "data");
    FAIL();
  } catch (const Error& error) {
    EXPECT_NE(std::string(error.what()).find("/nonexistent-folder/x.caffemodel"), std::string::npos)
        << error.what();
  }
}

}  // namespace
}  // namespace engine
