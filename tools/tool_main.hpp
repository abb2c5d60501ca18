// The main() of the dataset tools (convert_imageset, convert_mnist_data, compute_image_mean):
// glog to stderr without INFO lines, gflags with the tool's usage text, --help listing the
// tool's own flags only, the number of positional arguments checked, and an engine::Error
// reported as one line "TOOL: error: ..." with exit status 1 (no stack trace).
#pragma once

#include <cstdio>
#include <string>

#include <gflags/gflags.h>
#include <glog/logging.h>

#include "core/errors.hpp"

DECLARE_bool(help);

namespace engine {

// run(args, count) gets the positional arguments (argv[1], ...) and returns the exit status;
// `expected` names them for the usage error.
template <class Run>
int tool_main(int argc, char** argv, const char* tool, const char* usage, int min_args,
              int max_args, const char* expected, Run run) {
  FLAGS_logtostderr = true;
  FLAGS_minloglevel = 1;
  gflags::SetUsageMessage(usage);
  gflags::ParseCommandLineNonHelpFlags(&argc, &argv, true);
  google::InitGoogleLogging(argv[0]);
  if (FLAGS_help) {
    gflags::ShowUsageWithFlagsRestrict(argv[0], (std::string("tools/") + tool).c_str());
    return 0;
  }
  const int count = argc - 1;
  if (count < min_args || count > max_args) {
    std::fprintf(stderr, "%s: error: expected %s, got %d argument(s) (see --help)\n", tool,
                 expected, count);
    return 1;
  }
  try {
    return run(argv + 1, count);
  } catch (const Error& error) {
    std::fprintf(stderr, "%s: error: %s\n", tool, error.what());
    return 1;
  }
}

}  // namespace engine
