// ENGINE_VECTORIZED before a function of hot loops compiles it twice, for AVX-512 and for the
// build's baseline (AVX2 in the default, portable build), and the loader picks the one the
// processor runs (GCC's target_clones), so one binary is fast on both kinds of machine. Write
// such loops plainly: the compiler vectorizes them for either. Builds tuned for their own
// machine (ENGINE_NATIVE), sanitizer builds and other compilers compile the function once.
#pragma once

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && \
    !defined(ENGINE_NATIVE_BUILD) && !defined(__SANITIZE_ADDRESS__) &&  \
    !defined(__SANITIZE_THREAD__)
#define ENGINE_VECTORIZED __attribute__((target_clones("avx512f", "default")))
#else
#define ENGINE_VECTORIZED
#endif
