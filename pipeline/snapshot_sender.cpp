#include "snapshot_sender.h"

#include <fmt/core.h>
#include <gst/gst.h>

#include <cstdlib>
#include <stdexcept>

#include "model_channel.h"
#include "overlay_snapshots.h"

namespace swarmlens {

std::string SnapshotSender::branch() {
  // At most a frame a second reaches the encoder (videorate), and only the latest waits (leaky).
  return fmt::format("queue leaky=downstream max-size-buffers=1 ! videorate drop-only=true max-rate=1 ! videoscale ! "
                     "video/x-raw,width={} ! videoconvert ! jpegenc quality=70 ! appsink name=snapshots "
                     "emit-signals=true max-buffers=1 drop=true sync=false",
                     kWidth);
}

std::string SnapshotSender::interval_error(const std::string& text) {
  char* end = nullptr;
  const double s = std::strtod(text.c_str(), &end);
  if (end == text.c_str() || *end || !(s == 0 || (s >= 1 && s <= 86400))) return "0 (off) or 1 to 86400 seconds";
  return "";
}

SnapshotSender::SnapshotSender(const NatsOptions& nats, std::string model_id, double interval_s)
    : link_(NatsLink::connect(nats)), model_id_(std::move(model_id)), interval_(interval_s) {}

void SnapshotSender::attach(void* pipeline) {
  GstElement* sink = gst_bin_get_by_name(GST_BIN(pipeline), "snapshots");
  if (!sink) throw std::runtime_error("no appsink named snapshots in the pipeline");
  g_signal_connect(sink, "new-sample", G_CALLBACK(+[](GstElement* s, gpointer self) -> GstFlowReturn {
    GstSample* sample = nullptr;
    g_signal_emit_by_name(s, "pull-sample", &sample);
    if (!sample) return GST_FLOW_OK;
    GstMapInfo map;
    GstBuffer* buf = gst_sample_get_buffer(sample);
    if (buf && gst_buffer_map(buf, &map, GST_MAP_READ)) {
      static_cast<SnapshotSender*>(self)->on_jpeg(map.data, map.size);
      gst_buffer_unmap(buf, &map);
    }
    gst_sample_unref(sample);
    return GST_FLOW_OK;
  }), this);
  gst_object_unref(sink);
}

void SnapshotSender::on_jpeg(const uint8_t* data, size_t size) {
  const int64_t node = node_;
  if (node < 0) return;
  {
    std::lock_guard<std::mutex> g(lock_);
    const auto now = std::chrono::steady_clock::now();
    if (last_.time_since_epoch().count() && now - last_ < interval_) return;
    last_ = now;
  }
  if (size > OverlaySnapshots::kMaxBytes) {
    ++too_large_;
    return;
  }
  try {
    link_->publish(snapshot_subject(model_id_, uint32_t(node)), std::vector<uint8_t>(data, data + size));
    ++sent_;
  } catch (const NatsError&) {  // disconnected: the next one tries again
  }
}

}  // namespace swarmlens
