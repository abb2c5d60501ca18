// make_synthetic_images: a small ImageNet-shaped tree of JPEG files with class-dependent
// content, for exercising the ImageNet pipeline (convert_imageset, compute_image_mean, the Data
// layer, models/alexnet) without ImageNet.
//   make_synthetic_images [FLAGS] OUT_DIR CLASSES TRAIN_PER_CLASS VAL_PER_CLASS
// writes, as the ILSVRC-2012 release and Caffe's data/ilsvrc12 lay them out:
//   OUT_DIR/train/<wnid>/<wnid>_<n>.JPEG        TRAIN_PER_CLASS images per class
//   OUT_DIR/val/ILSVRC2012_val_<8 digits>.JPEG  CLASSES x VAL_PER_CLASS images, classes mixed
//   OUT_DIR/train.txt, OUT_DIR/val.txt          "relative/path label" (relative to train/, val/)
//   OUT_DIR/synsets.txt                         the wnid of each label, in label order
// Class c's images: a background gradient whose direction and colours come from c, and a
// filled shape (one of four kinds) in c's hue, at a random place, size and rotation, with
// brightness jitter and pixel noise; image sides are drawn from [--min_side, --max_side] so a
// resize to 256 x 256 changes them. Everything comes from one seeded generator: the same
// arguments give the same files (with the same libjpeg).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include <gflags/gflags.h>
#include <glog/logging.h>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "core/errors.hpp"

DEFINE_uint64(seed, 1, "Seed of every random choice (sizes, placement, noise, val order)");
DEFINE_int32(min_side, 200, "Smallest image side, in pixels");
DEFINE_int32(max_side, 400, "Largest image side, in pixels");
DEFINE_int32(quality, 90, "JPEG quality (1-100)");
DECLARE_bool(help);

namespace engine {
namespace {

namespace fs = std::filesystem;
constexpr double kPi = 3.14159265358979323846;

// Draws from mt19937_64 by plain arithmetic: the standard fixes the generator's output but not
// std::uniform_*_distribution's, so this keeps the files the same across standard libraries.
class Random {
 public:
  explicit Random(uint64_t seed) : generator_(seed) {}
  double uniform(double low, double high) {
    return low + (high - low) * (double(generator_() >> 11) * 0x1.0p-53);
  }
  int integer(int low, int high) {  // [low, high]
    return low + static_cast<int>(generator_() % uint64_t(high - low + 1));
  }
  uint64_t bits() { return generator_(); }

 private:
  std::mt19937_64 generator_;
};

std::string wnid(int label) {
  char name[16];
  std::snprintf(name, sizeof name, "n%08d", 1000000 + 7919 * label);
  return name;
}

// HSV (hue in degrees, saturation and value in [0, 1]) to BGR in [0, 255].
cv::Vec3d bgr_from_hsv(double hue, double saturation, double value) {
  hue = std::fmod(std::fmod(hue, 360.0) + 360.0, 360.0);
  const double chroma = value * saturation;
  const double x = chroma * (1 - std::fabs(std::fmod(hue / 60.0, 2.0) - 1));
  const double m = value - chroma;
  double r = 0, g = 0, b = 0;
  switch (static_cast<int>(hue / 60.0)) {
    case 0: r = chroma, g = x; break;
    case 1: r = x, g = chroma; break;
    case 2: g = chroma, b = x; break;
    case 3: g = x, b = chroma; break;
    case 4: r = x, b = chroma; break;
    default: r = chroma, b = x; break;
  }
  return cv::Vec3d(b + m, g + m, r + m) * 255.0;
}

cv::Mat make_image(int label, int classes, Random& random) {
  const int width = random.integer(FLAGS_min_side, FLAGS_max_side);
  const int height = random.integer(FLAGS_min_side, FLAGS_max_side);
  const double hue = 360.0 * label / classes + random.uniform(-8, 8);
  const double brightness = random.uniform(0.8, 1.1);

  // Background: a gradient across the class's direction between two dim colours of its own.
  const double angle = 2 * kPi * label / classes + random.uniform(-0.3, 0.3);
  const cv::Vec3d from = bgr_from_hsv(hue + 180, 0.5, 0.35 * brightness);
  const cv::Vec3d to = bgr_from_hsv(hue + 90, 0.4, 0.75 * brightness);
  const double dx = std::cos(angle), dy = std::sin(angle);
  const double span = std::fabs(dx) * width + std::fabs(dy) * height;
  const double offset = std::min(0.0, dx * width) + std::min(0.0, dy * height);
  cv::Mat image(height, width, CV_8UC3);
  for (int y = 0; y < height; ++y) {
    uint8_t* row = image.ptr<uint8_t>(y);
    for (int x = 0; x < width; ++x) {
      const double t = (dx * x + dy * y - offset) / span;
      const cv::Vec3d colour = from * (1 - t) + to * t;
      for (int c = 0; c < 3; ++c) row[3 * x + c] = cv::saturate_cast<uint8_t>(colour[c]);
    }
  }

  // The object: the class's shape in its hue, somewhere inside the image.
  const cv::Vec3d fill = bgr_from_hsv(hue, 0.85, 0.95 * brightness);
  const cv::Scalar colour(fill[0], fill[1], fill[2]);
  const int side = std::min(width, height);
  const double radius = side * random.uniform(0.18, 0.35);
  const cv::Point2d centre(random.uniform(radius, width - radius),
                           random.uniform(radius, height - radius));
  const double rotation = random.uniform(0, 2 * kPi);
  auto polygon = [&](int corners) {
    std::vector<cv::Point> points;
    for (int k = 0; k < corners; ++k) {
      const double a = rotation + 2 * kPi * k / corners;
      points.emplace_back(cvRound(centre.x + radius * std::cos(a)),
                          cvRound(centre.y + radius * std::sin(a)));
    }
    cv::fillConvexPoly(image, points, colour, cv::LINE_AA);
  };
  switch (label % 4) {
    case 0: cv::circle(image, centre, cvRound(radius), colour, cv::FILLED, cv::LINE_AA); break;
    case 1: polygon(4); break;
    case 2: polygon(3); break;
    default: {  // a ring
      cv::circle(image, centre, cvRound(radius), colour, std::max(2, cvRound(radius / 3)),
                 cv::LINE_AA);
      break;
    }
  }

  cv::Mat noise(height, width, CV_16SC3);
  cv::RNG noise_generator(random.bits());
  noise_generator.fill(noise, cv::RNG::NORMAL, 0, 6);
  cv::Mat noisy;
  cv::add(image, noise, noisy, cv::noArray(), CV_8UC3);
  return noisy;
}

void write_image(const fs::path& path, const cv::Mat& image) {
  ENGINE_REQUIRE(cv::imwrite(path.string(), image, {cv::IMWRITE_JPEG_QUALITY, FLAGS_quality}),
                 path.string() << ": cannot write the image");
}

int parse_count(const char* text, const char* what, int minimum) {
  char* end = nullptr;
  const long value = std::strtol(text, &end, 10);
  ENGINE_REQUIRE(end != text && *end == '\0' && value >= minimum && value <= 1000000,
                 what << " must be an integer from " << minimum << " (got '" << text << "')");
  return static_cast<int>(value);
}

int make(const fs::path& out, int classes, int train_per_class, int val_per_class) {
  ENGINE_REQUIRE(FLAGS_min_side >= 16 && FLAGS_max_side >= FLAGS_min_side,
                 "--min_side (>= 16) and --max_side (>= min_side) give the image sides (got "
                     << FLAGS_min_side << " and " << FLAGS_max_side << ")");
  ENGINE_REQUIRE(FLAGS_quality >= 1 && FLAGS_quality <= 100,
                 "--quality must be from 1 to 100 (got " << FLAGS_quality << ")");
  Random random(FLAGS_seed);

  fs::create_directories(out / "train");
  fs::create_directories(out / "val");
  std::ofstream synsets(out / "synsets.txt"), train_list(out / "train.txt");
  for (int label = 0; label < classes; ++label) {
    const std::string name = wnid(label);
    synsets << name << '\n';
    fs::create_directories(out / "train" / name);
    for (int n = 1; n <= train_per_class; ++n) {
      const std::string file = name + "/" + name + "_" + std::to_string(n) + ".JPEG";
      write_image(out / "train" / file, make_image(label, classes, random));
      train_list << file << ' ' << label << '\n';
    }
  }

  // The validation images, numbered in a shuffled class order as ILSVRC's are.
  std::vector<int> val_labels;
  for (int label = 0; label < classes; ++label) {
    val_labels.insert(val_labels.end(), val_per_class, label);
  }
  for (size_t i = val_labels.size(); i > 1; --i) {
    std::swap(val_labels[i - 1], val_labels[random.bits() % i]);
  }
  std::ofstream val_list(out / "val.txt");
  for (size_t i = 0; i < val_labels.size(); ++i) {
    char file[40];
    std::snprintf(file, sizeof file, "ILSVRC2012_val_%08zu.JPEG", i + 1);
    write_image(out / "val" / file, make_image(val_labels[i], classes, random));
    val_list << file << ' ' << val_labels[i] << '\n';
  }
  ENGINE_REQUIRE(synsets && train_list && val_list, out.string() << ": cannot write the lists");
  std::fprintf(stderr, "Wrote %d training and %zu validation images of %d classes to %s\n",
               classes * train_per_class, val_labels.size(), classes, out.c_str());
  return 0;
}

}  // namespace
}  // namespace engine

int main(int argc, char** argv) {
  FLAGS_logtostderr = true;
  gflags::SetUsageMessage(
      "Write a small synthetic ImageNet-style tree of JPEG images with list files.\n"
      "Usage:\n"
      "    make_synthetic_images [FLAGS] OUT_DIR CLASSES TRAIN_PER_CLASS VAL_PER_CLASS");
  gflags::ParseCommandLineNonHelpFlags(&argc, &argv, true);
  google::InitGoogleLogging(argv[0]);
  if (FLAGS_help) {
    gflags::ShowUsageWithFlagsRestrict(argv[0], "tools/make_synthetic_images");
    return 0;
  }
  if (argc != 5) {
    std::fprintf(stderr,
                 "make_synthetic_images: error: expected OUT_DIR CLASSES TRAIN_PER_CLASS "
                 "VAL_PER_CLASS, got %d argument(s) (see --help)\n",
                 argc - 1);
    return 1;
  }
  try {
    return engine::make(argv[1], engine::parse_count(argv[2], "CLASSES", 1),
                        engine::parse_count(argv[3], "TRAIN_PER_CLASS", 1),
                        engine::parse_count(argv[4], "VAL_PER_CLASS", 0));
  } catch (const engine::Error& error) {
    std::fprintf(stderr, "make_synthetic_images: error: %s\n", error.what());
    return 1;
  } catch (const std::exception& error) {  // filesystem or OpenCV
    std::fprintf(stderr, "make_synthetic_images: error: %s\n", error.what());
    return 1;
  }
}
