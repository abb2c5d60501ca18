// NumPy .npy files of float32: the format NumPy's np.save writes and np.load reads
// (numpy.lib.format). Versions 1.0 and 2.0 (and 3.0, whose header is UTF-8 but otherwise the
// same) are read; 1.0 is written, or 2.0 when the header outgrows 1.0's 65535 bytes. Only
// little-endian float32 ('<f4') in C order is supported; any other dtype, fortran_order True,
// a bad magic string or header, or a data size that disagrees with the shape fails with
// engine::Error naming the file. Writes are atomic. Stateless; thread-safe.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace engine {

class Blob;

struct NpyArray {
  std::vector<int64_t> shape;  // empty for a 0-d array (one value)
  std::vector<float> data;     // C order
};

NpyArray read_npy(const std::string& path);
// `data` holds the product of `shape` values (1 for a 0-d array).
void write_npy(const std::string& path, const std::vector<int64_t>& shape, const float* data);
// The whole file's bytes, as write_npy writes them.
std::string npy_bytes(const std::vector<int64_t>& shape, const float* data);

// A blob's data, in its shape.
void write_npy(const std::string& path, const Blob& blob);

}  // namespace engine
