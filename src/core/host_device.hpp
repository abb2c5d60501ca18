// ENGINE_HOST_DEVICE marks a function that CPU code and CUDA kernels both call (the elementwise
// ops, small math helpers). Under a host compiler it expands to nothing.
#pragma once

#ifdef __CUDACC__
#define ENGINE_HOST_DEVICE __host__ __device__
#else
#define ENGINE_HOST_DEVICE
#endif
