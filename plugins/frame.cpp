#include "frame.h"

#include <opencv2/imgproc.hpp>

#include "dataset.h"

namespace swarmlens {

int cv_type_of(GstVideoFormat format) {
  return format == GST_VIDEO_FORMAT_GRAY8 ? CV_8UC1 : format == GST_VIDEO_FORMAT_RGB ? CV_8UC3 : CV_8UC4;
}

bool video_info_from_caps(GstElement* element, GstCaps* caps, GstVideoInfo* info) {
  if (gst_video_info_from_caps(info, caps)) return true;
  GST_ELEMENT_ERROR(element, CORE, NEGOTIATION, ("Cannot parse caps"), ("%" GST_PTR_FORMAT, static_cast<void*>(caps)));
  return false;
}

void frame_to_input(const GstVideoFrame* frame, const ModelSpec& spec, std::vector<float>& out) {
  const int w = GST_VIDEO_FRAME_WIDTH (frame), h = GST_VIDEO_FRAME_HEIGHT (frame);
  const int type = cv_type_of(GST_VIDEO_FRAME_FORMAT (frame));
  const cv::Mat src(h, w, type, GST_VIDEO_FRAME_PLANE_DATA (frame, 0),
                    size_t(GST_VIDEO_FRAME_PLANE_STRIDE (frame, 0)));
  cv::Mat conv;
  if (spec.channels == 1) {
    if (type == CV_8UC1) conv = src;
    else cv::cvtColor(src, conv, type == CV_8UC3 ? cv::COLOR_RGB2GRAY : cv::COLOR_BGRA2GRAY);
  } else {
    if (type == CV_8UC1) cv::cvtColor(src, conv, cv::COLOR_GRAY2RGB);
    else if (type == CV_8UC3) conv = src;
    else cv::cvtColor(src, conv, cv::COLOR_BGRA2RGB);
  }
  cv::Mat small;
  cv::resize(conv, small, cv::Size(spec.width, spec.height), 0, 0,
             cv::INTER_LINEAR);
  const size_t plane = size_t(spec.width) * spec.height;
  out.resize(plane * size_t(spec.channels));
  const auto [mean, stdev] = swarmlens::frame_normalisation(spec.channels);
  for (int y = 0; y < spec.height; ++y) {
    const uint8_t* row = small.ptr<uint8_t>(y);
    for (int x = 0; x < spec.width; ++x)
      for (int c = 0; c < spec.channels; ++c)
        out[size_t(c) * plane + size_t(y) * spec.width + x] =
            (row[x * spec.channels + c] / 255.0f - mean) / stdev;
  }
}

bool buffer_to_input(GstElement* element, const GstVideoInfo* info, GstBuffer* buf, const ModelSpec& spec,
                     std::vector<float>& out) {
  GstVideoFrame frame;
  if (!gst_video_frame_map(&frame, const_cast<GstVideoInfo*>(info), buf, GST_MAP_READ)) {
    GST_ELEMENT_ERROR(element, STREAM, FAILED, ("Cannot map a frame"), (nullptr));
    return false;
  }
  frame_to_input(&frame, spec, out);
  gst_video_frame_unmap(&frame);
  return true;
}

}  // namespace swarmlens
