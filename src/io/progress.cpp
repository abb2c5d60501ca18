#include "io/progress.hpp"

#include <unistd.h>

#include <algorithm>
#include <cstdio>

namespace engine {

namespace {

std::string format_duration(double seconds) {
  const long s = static_cast<long>(seconds + 0.5);
  char text[32];
  if (s >= 3600) {
    std::snprintf(text, sizeof text, "%ld:%02ld:%02ld", s / 3600, s / 60 % 60, s % 60);
  } else {
    std::snprintf(text, sizeof text, "%ld:%02ld", s / 60, s % 60);
  }
  return text;
}

}  // namespace

Progress::Progress(size_t total, size_t plain_every, int terminal)
    : total_(total),
      plain_every_(plain_every > 0 ? plain_every : 1000),
      terminal_(terminal < 0 ? ::isatty(STDERR_FILENO) == 1 : terminal == 1),
      start_(std::chrono::steady_clock::now()),
      last_draw_(start_) {}

Progress::~Progress() {
  if (drawn_ && !finished_) std::fputc('\n', stderr);
}

double Progress::seconds() const {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
}

void Progress::advance(size_t n) {
  done_ += n;
  if (terminal_) {
    const auto now = std::chrono::steady_clock::now();
    if (now - last_draw_ >= std::chrono::milliseconds(100) || (total_ && done_ >= total_)) {
      last_draw_ = now;
      draw();
    }
  } else if (done_ / plain_every_ != last_plain_ / plain_every_) {
    last_plain_ = done_;
    std::fprintf(stderr, "Processed %zu files.\n", done_);
  }
}

void Progress::draw() {
  const double elapsed = seconds();
  const double rate = elapsed > 0 ? done_ / elapsed : 0;
  std::string line = "\r";
  if (total_ > 0) {
    constexpr int kWidth = 30;
    const double fraction = std::min(1.0, double(done_) / total_);
    const int filled = static_cast<int>(fraction * kWidth);
    line += "[" + std::string(filled, '#') + std::string(kWidth - filled, '.') + "] ";
    char text[128];
    std::snprintf(text, sizeof text, "%zu/%zu %3d%%  %.0f/s", done_, total_,
                  static_cast<int>(fraction * 100), rate);
    line += text;
    if (rate > 0 && done_ < total_) {
      line += "  " + format_duration((total_ - done_) / rate) + " left";
    } else {
      line += "  " + format_duration(elapsed);
    }
  } else {
    char text[96];
    std::snprintf(text, sizeof text, "%zu  %.0f/s  %s", done_, rate,
                  format_duration(elapsed).c_str());
    line += text;
  }
  line += "\033[K";  // clears what a longer previous line left
  std::fputs(line.c_str(), stderr);
  std::fflush(stderr);
  drawn_ = true;
}

void Progress::message(const std::string& line) {
  if (terminal_ && drawn_) std::fputs("\r\033[K", stderr);
  std::fprintf(stderr, "%s\n", line.c_str());
  if (terminal_ && drawn_) draw();
}

void Progress::finish() {
  if (finished_) return;
  finished_ = true;
  if (terminal_) {
    draw();
    std::fputc('\n', stderr);
  } else if (last_plain_ != done_ || done_ == 0) {
    std::fprintf(stderr, "Processed %zu files.\n", done_);
  }
}

}  // namespace engine
