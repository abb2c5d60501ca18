// One cell of an LSTM timestep (stream n, unit d), written once for the CPU loops of
// recurrent.cpp and the kernels of recurrent.cu. A stream's 4H gate values lie in blocks of H in
// the order i, f, o, g; `gates` and `acts` point at the stream's first.
#pragma once

#include <cmath>

#include "core/host_device.hpp"

namespace engine {

// Caffe's LSTMUnit computes both through the logistic function in double precision; the same
// here (on the GPU too) so that the results agree to the last bits.
ENGINE_HOST_DEVICE inline float logistic_in_double(float x) {
  return static_cast<float>(1.0 / (1.0 + std::exp(-double(x))));
}
ENGINE_HOST_DEVICE inline float tanh_by_logistic(float x) {
  return static_cast<float>(2.0 / (1.0 + std::exp(-2.0 * x)) - 1.0);
}

// i, f, o = logistic, g = tanh, with f replaced by keep * f (0 when keep is 0);
// c = f c_prev + i g, h = o tanh(c). acts receives the activations in the gates' layout, f
// already multiplied by keep; it may be `gates` itself (each cell reads its four gates before
// writing them).
ENGINE_HOST_DEVICE inline void lstm_cell_forward(int H, int d, const float* gates, float keep,
                                                 float c_prev, float* acts, float* c, float* h) {
  const float i = logistic_in_double(gates[d]);
  const float f = keep == 0 ? 0.0f : keep * logistic_in_double(gates[H + d]);
  const float o = logistic_in_double(gates[2 * H + d]);
  const float g = tanh_by_logistic(gates[3 * H + d]);
  acts[d] = i;
  acts[H + d] = f;
  acts[2 * H + d] = o;
  acts[3 * H + d] = g;
  const float cell = f * c_prev + i * g;
  *c = cell;
  *h = o * tanh_by_logistic(cell);
}

// The cell's gradients by Caffe's formulas (for a keep other than 0 or 1 they use f = keep *
// logistic in f's derivative, as Caffe does), from the gradients c_diff and h_diff reaching c and
// h. c_prev_diff and gates_diff (the stream's 4H) may be null (not wanted).
ENGINE_HOST_DEVICE inline void lstm_cell_backward(int H, int d, const float* acts, float c_prev,
                                                  float c, float c_diff, float h_diff,
                                                  float* c_prev_diff, float* gates_diff) {
  const float i = acts[d], f = acts[H + d], o = acts[2 * H + d], g = acts[3 * H + d];
  const float tanh_c = tanh_by_logistic(c);
  const float dc = c_diff + h_diff * o * (1 - tanh_c * tanh_c);
  if (gates_diff) {
    gates_diff[d] = dc * g * i * (1 - i);
    gates_diff[H + d] = dc * c_prev * f * (1 - f);
    gates_diff[2 * H + d] = h_diff * tanh_c * o * (1 - o);
    gates_diff[3 * H + d] = dc * i * (1 - g * g);
  }
  if (c_prev_diff) *c_prev_diff = dc * f;
}

}  // namespace engine
