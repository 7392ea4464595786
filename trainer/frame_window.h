// The sliding window of frames a temporal model takes per sample: the last `window` frames of one
// stream, oldest first. Header-only; the elements keep one per stream.
#pragma once

#include <algorithm>
#include <cstddef>
#include <vector>

namespace swarmlens {

// A temporal model's frames per sample, and the frames between two samples once the window is full,
// unless told otherwise (swarmtrain, swarmclassify, the compression benchmark).
struct WindowConfig {
  int window = 8;
  int stride = 2;
};

class FrameWindow {
 public:
  FrameWindow() = default;
  FrameWindow(size_t frame_floats, int window) { reset(frame_floats, window); }

  void reset(size_t frame_floats, int window) {
    frame_ = frame_floats;
    window_ = size_t(std::max(1, window));
    ring_.assign(frame_ * window_, 0.0f);
    clear();
  }
  // Forgets the frames (a discontinuity: flush, a new stream).
  void clear() {
    next_ = count_ = 0;
    pushed_ = 0;
  }
  // Adds one frame of frame_floats; true once the window is full (then sample() is the last
  // `window` frames).
  bool push(const float* frame) {
    std::copy(frame, frame + frame_, ring_.begin() + long(next_ * frame_));
    next_ = (next_ + 1) % window_;
    count_ = std::min(count_ + 1, window_);
    ++pushed_;
    return full();
  }
  bool full() const { return count_ == window_; }
  // Frames pushed since the last clear().
  size_t pushed() const { return pushed_; }
  // [window, frame] oldest first. Only meaningful when full().
  const std::vector<float>& sample() {
    sample_.resize(ring_.size());
    for (size_t i = 0; i < window_; ++i) {
      const size_t slot = (next_ + i) % window_;  // next_ is the oldest when full
      std::copy_n(ring_.begin() + long(slot * frame_), frame_, sample_.begin() + long(i * frame_));
    }
    return sample_;
  }

 private:
  size_t frame_ = 0, window_ = 1, next_ = 0, count_ = 0, pushed_ = 0;
  std::vector<float> ring_, sample_;
};

}  // namespace swarmlens
