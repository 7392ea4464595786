// Numeric properties whose range the element checks, not GLib. GLib answers a value outside a
// property's range with a warning and keeps the old value, so `gst-launch-1.0 ... every=0` would run
// on the default as if nothing were wrong. A checked property takes any value of its type and keeps
// its range beside it: check_ranges() at start posts an error naming the first property outside its
// range (the pipeline does not start), and set while the element runs, a value outside the range is
// refused with a bus warning and the old value kept. gst-inspect shows the range in the blurb.
#pragma once

#include <gst/gst.h>

#include <string>

namespace swarmlens {

GParamSpec* checked_int(const char* name, const char* nick, const std::string& blurb, gint min, gint max, gint def,
                        GParamFlags flags);
GParamSpec* checked_uint(const char* name, const char* nick, const std::string& blurb, guint min, guint max, guint def,
                         GParamFlags flags);
GParamSpec* checked_int64(const char* name, const char* nick, const std::string& blurb, gint64 min, gint64 max,
                          gint64 def, GParamFlags flags);
GParamSpec* checked_double(const char* name, const char* nick, const std::string& blurb, gdouble min, gdouble max,
                           gdouble def, GParamFlags flags);

// At start: false, with an error posted naming the property, its value and its range, if a checked
// property of `element` is outside its range.
bool check_ranges(GstElement* element);

// In set_property: true (the value must not be taken; a warning is posted) if `element` is past
// READY and `value` is outside the checked range of `pspec`.
bool refuse_while_running(GstElement* element, GParamSpec* pspec, const GValue* value);

}  // namespace swarmlens
