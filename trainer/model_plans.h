// Architecture constants shared by the LibTorch models (model_torch.cpp) and the ONNX exporter
// (onnx_export.cpp), so that the exported graph cannot drift from the trained net.
#pragma once

namespace swarmlens {

// MobileNet-style net: depthwise-separable blocks {in channels, out channels, depthwise stride}
// after a 16-channel stride-2 stem.
inline constexpr int kMobileNetStem = 16;
inline constexpr int kMobileNetPlan[][3] = {{16, 32, 1}, {32, 64, 2}, {64, 64, 1},
                                            {64, 128, 2}, {128, 128, 1}, {128, 256, 2}};

}  // namespace swarmlens
