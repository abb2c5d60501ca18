// Progress of a long-running tool, on stderr.
//
// On a terminal: one line redrawn in place with '\r' (a bar, the count, the rate and the time
// left), at most ten times a second. Elsewhere (a log file, a pipe): Caffe's plain
// "Processed N files." every `plain_every` items, so logs stay readable. Not thread-safe: one
// thread reports.
#pragma once

#include <chrono>
#include <cstddef>
#include <string>

namespace engine {

class Progress {
 public:
  // total: the expected count (0 if unknown: no bar, no time left).
  // terminal: 1 or 0 to force a mode; -1 asks isatty(stderr).
  explicit Progress(size_t total, size_t plain_every = 1000, int terminal = -1);
  ~Progress();

  void advance(size_t n = 1);
  // A line of its own (a warning, say) that does not garble the bar.
  void message(const std::string& line);
  // Completes the display; the plain mode prints the final count unless it just did.
  void finish();

  size_t done() const { return done_; }
  double seconds() const;

 private:
  void draw();

  size_t total_, plain_every_, done_ = 0, last_plain_ = 0;
  bool terminal_, drawn_ = false, finished_ = false;
  std::chrono::steady_clock::time_point start_, last_draw_;
};

}  // namespace engine
