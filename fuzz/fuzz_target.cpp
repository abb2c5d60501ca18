#include "fuzz_target.hpp"

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>

#include <glog/logging.h>


namespace engine::fuzz {
namespace {

// Under /dev/shm where there is one: the inputs never touch a disk.
const std::filesystem::path& own_folder() {
  static const std::filesystem::path folder = [] {
    const char* tmp = std::getenv("TMPDIR");
    const std::filesystem::path base =
        std::filesystem::is_directory("/dev/shm") ? "/dev/shm" : (tmp ? tmp : "/tmp");
    const auto path = base / ("engine-fuzz-" + std::to_string(::getpid()));
    std::filesystem::create_directories(path);
    return path;
  }();
  return folder;
}

}  // namespace

Outcomes& outcomes() {
  static Outcomes counts;
  return counts;
}

void set_up() {
  static const bool done = [] {
    FLAGS_minloglevel = google::GLOG_FATAL;
    std::atexit([] {
      std::error_code ignored;
      std::filesystem::remove_all(own_folder(), ignored);
    });
    return true;
  }();
  (void)done;
}

std::string as_file(const uint8_t* data, size_t size, const std::string& name) {
  const std::string path = (own_folder() / name).string();
  std::ofstream(path, std::ios::binary | std::ios::trunc)
      .write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
  return path;
}

std::string small_net_text() {
  std::ifstream in(ENGINE_FUZZ_SMALL_NET);
  CHECK(in) << "cannot open " << ENGINE_FUZZ_SMALL_NET;
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

}  // namespace engine::fuzz
