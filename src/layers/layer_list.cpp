// Every layer type the engine knows, once. Adding a type is one line here plus
// ENGINE_LAYER_FACTORY(Type, Class) in the layer's own file.
#include "core/layer_registry.hpp"

// X(type, devices): `type` is the string a prototxt names.
#define ENGINE_LAYERS(X)  \
  X(Input, kCpuAndGpu)      \
  X(DummyData, kCpuAndGpu)  \
  X(ReLU, kCpuAndGpu)       \
  X(Sigmoid, kCpuAndGpu)    \
  X(TanH, kCpuAndGpu)       \
  X(Dropout, kCpuAndGpu)    \
  X(Softmax, kCpuAndGpu)    \
  X(SoftmaxWithLoss, kCpuAndGpu) \
  X(Accuracy, kCpuAndGpu)   \
  X(Convolution, kCpuAndGpu)  \
  X(Deconvolution, kCpuAndGpu)  \
  X(InnerProduct, kCpuAndGpu)  \
  X(Split, kCpuAndGpu)      \
  X(Concat, kCpuAndGpu)     \
  X(Slice, kCpuAndGpu)      \
  X(Silence, kCpuAndGpu)    \
  X(Flatten, kCpuAndGpu)    \
  X(Reshape, kCpuAndGpu)    \
  X(Eltwise, kCpuAndGpu)    \
  X(BatchNorm, kCpuAndGpu)  \
  X(Scale, kCpuAndGpu)      \
  X(Bias, kCpuAndGpu)       \
  X(Pooling, kCpuAndGpu)    \
  X(LRN, kCpuAndGpu)        \
  X(PReLU, kCpuAndGpu)  \
  X(ELU, kCpuAndGpu)  \
  X(AbsVal, kCpuAndGpu)  \
  X(BNLL, kCpuAndGpu)  \
  X(Power, kCpuAndGpu)  \
  X(Exp, kCpuAndGpu)  \
  X(Log, kCpuAndGpu)  \
  X(Threshold, kCpuAndGpu)  \
  X(Clip, kCpuAndGpu)  \
  X(Swish, kCpuAndGpu)  \
  X(EuclideanLoss, kCpuAndGpu)  \
  X(SigmoidCrossEntropyLoss, kCpuAndGpu)  \
  X(HingeLoss, kCpuAndGpu)  \
  X(MultinomialLogisticLoss, kCpuAndGpu)  \
  X(InfogainLoss, kCpuAndGpu)  \
  X(ContrastiveLoss, kCpuAndGpu)  \
  X(RNN, kCpuAndGpu)  \
  X(LSTM, kCpuAndGpu)  \
  X(LSTMUnit, kCpuAndGpu)  \
  X(ArgMax, kCpuAndGpu)  \
  X(Reduction, kCpuAndGpu)  \
  X(Crop, kCpuAndGpu)  \
  X(Tile, kCpuAndGpu)  \
  X(BatchReindex, kCpuAndGpu)  \
  X(Filter, kCpuAndGpu)  \
  X(MVN, kCpuAndGpu)  \
  X(Embed, kCpuAndGpu)  \
  X(Parameter, kCpuAndGpu)  \
  X(SPP, kCpuAndGpu)  \
  X(GatherChannels, kCpuAndGpu)  \
  X(KeepChannels, kCpuAndGpu)  \
  X(HaloChannels, kCpuAndGpu)  \
  X(Python, kCpuOnly)  \
  /* end of the list */

// Layers of src/data, built only where LMDB and OpenCV are found.
#ifdef ENGINE_HAVE_DATA
#define ENGINE_DATA_LAYERS(X) \
  X(Data, kCpuAndGpu)           \
  X(ImageData, kCpuAndGpu)
#else
#define ENGINE_DATA_LAYERS(X)
#endif

#define ENGINE_ALL_LAYERS(X) ENGINE_LAYERS(X) ENGINE_DATA_LAYERS(X)

namespace engine {

#define ENGINE_DECLARE_FACTORY(TYPE, DEVICES) LayerPtr create_##TYPE##_layer(const LayerParameter&);
ENGINE_ALL_LAYERS(ENGINE_DECLARE_FACTORY)

const std::vector<LayerEntry>& layer_registry() {
#define ENGINE_ENTRY(TYPE, DEVICES) {#TYPE, &create_##TYPE##_layer, DEVICES},
  static const std::vector<LayerEntry> entries = {ENGINE_ALL_LAYERS(ENGINE_ENTRY)};
  return entries;
}

}  // namespace engine
