// Video frames to model input and back: thin OpenCV glue shared by the elements.
#pragma once

#include <gst/video/video.h>

#include <string>
#include <vector>

#include "model.h"

namespace swarmlens {

// Formats every Swarmlens element handles; as a caps string fragment.
#define SWARMLENS_VIDEO_FORMATS "{ GRAY8, RGB, BGRx }"

// The OpenCV pixel type of one of SWARMLENS_VIDEO_FORMATS (GRAY8 -> CV_8UC1, RGB -> CV_8UC3,
// BGRx -> CV_8UC4).
int cv_type_of(GstVideoFormat format);

// Reads video caps into `info`; on failure posts a negotiation error from `element` and returns false.
bool video_info_from_caps(GstElement* element, GstCaps* caps, GstVideoInfo* info);

// The frame (GRAY8, RGB or BGRx) as model input [C, H, W]: converted to the model's channels,
// resized to its input size, normalised as in training. out is resized to fit.
void frame_to_input(const GstVideoFrame* frame, const ModelSpec& spec, std::vector<float>& out);

// Maps `buf` (described by `info`), converts it with frame_to_input and unmaps it. On a mapping
// failure posts a stream error from `element` and returns false.
bool buffer_to_input(GstElement* element, const GstVideoInfo* info, GstBuffer* buf, const ModelSpec& spec,
                     std::vector<float>& out);

}  // namespace swarmlens
