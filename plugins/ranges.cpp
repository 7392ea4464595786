#include "ranges.h"

#include <cmath>

namespace swarmlens {

namespace {

struct Range {
  double min, max;
};

GQuark range_quark() {
  static const GQuark q = g_quark_from_static_string("swarmlens-checked-range");
  return q;
}

// The blurb as gst-inspect shows it: the range in words. GLib copies it (no static blurb).
std::string with_range(const std::string& blurb, const std::string& min, const std::string& max) {
  return blurb + " [" + min + " .. " + max + "; outside it, an error at start]";
}

std::string number(double v) {
  gchar buf[G_ASCII_DTOSTR_BUF_SIZE];
  return g_ascii_formatd(buf, sizeof buf, "%.10g", v);
}

GParamSpec* keep(GParamSpec* p, double min, double max) {
  g_param_spec_set_qdata_full(p, range_quark(), new Range{min, max}, [](gpointer r) { delete static_cast<Range*>(r); });
  return p;
}

GParamFlags copied_blurb(GParamFlags flags) { return GParamFlags(flags & ~G_PARAM_STATIC_BLURB); }

// The value as a double, and whether the spec is a checked one.
const Range* range_of(GParamSpec* pspec) { return static_cast<const Range*>(g_param_spec_get_qdata(pspec, range_quark())); }

double as_double(const GValue* v) {
  switch (G_VALUE_TYPE(v)) {
    case G_TYPE_INT: return g_value_get_int(v);
    case G_TYPE_UINT: return g_value_get_uint(v);
    case G_TYPE_INT64: return double(g_value_get_int64(v));
    case G_TYPE_UINT64: return double(g_value_get_uint64(v));
    default: return g_value_get_double(v);
  }
}

bool outside(const Range& r, double v) { return std::isnan(v) || v < r.min || v > r.max; }

}  // namespace

GParamSpec* checked_int(const char* name, const char* nick, const std::string& blurb, gint min, gint max, gint def,
                        GParamFlags flags) {
  return keep(g_param_spec_int(name, nick, with_range(blurb, number(min), number(max)).c_str(), G_MININT, G_MAXINT, def,
                               copied_blurb(flags)), min, max);
}

GParamSpec* checked_uint(const char* name, const char* nick, const std::string& blurb, guint min, guint max, guint def,
                         GParamFlags flags) {
  return keep(g_param_spec_uint(name, nick, with_range(blurb, number(min), number(max)).c_str(), 0, G_MAXUINT, def,
                                copied_blurb(flags)), min, max);
}

GParamSpec* checked_int64(const char* name, const char* nick, const std::string& blurb, gint64 min, gint64 max,
                          gint64 def, GParamFlags flags) {
  return keep(g_param_spec_int64(name, nick, with_range(blurb, number(double(min)), number(double(max))).c_str(),
                                 G_MININT64, G_MAXINT64, def, copied_blurb(flags)), double(min), double(max));
}

GParamSpec* checked_double(const char* name, const char* nick, const std::string& blurb, gdouble min, gdouble max,
                           gdouble def, GParamFlags flags) {
  const std::string top = max >= G_MAXDOUBLE ? std::string("any") : number(max);
  return keep(g_param_spec_double(name, nick, with_range(blurb, number(min), top).c_str(), -G_MAXDOUBLE, G_MAXDOUBLE,
                                  def, copied_blurb(flags)), min, max);
}

bool check_ranges(GstElement* element) {
  guint n = 0;
  GParamSpec** specs = g_object_class_list_properties(G_OBJECT_GET_CLASS(element), &n);
  bool ok = true;
  for (guint i = 0; i < n && ok; ++i) {
    const Range* r = range_of(specs[i]);
    if (!r) continue;
    GValue v = G_VALUE_INIT;
    g_value_init(&v, G_PARAM_SPEC_VALUE_TYPE(specs[i]));
    g_object_get_property(G_OBJECT(element), specs[i]->name, &v);
    const double x = as_double(&v);
    if (outside(*r, x)) {
      GST_ELEMENT_ERROR(element, RESOURCE, SETTINGS, ("%s=%s is outside its range, %s .. %s", specs[i]->name,
          number(x).c_str(), number(r->min).c_str(), number(r->max).c_str()), ("gst-inspect-1.0 %s says what it takes",
          GST_OBJECT_NAME(gst_element_get_factory(element))));
      ok = false;
    }
    g_value_unset(&v);
  }
  g_free(specs);
  return ok;
}

bool refuse_while_running(GstElement* element, GParamSpec* pspec, const GValue* value) {
  const Range* r = range_of(pspec);
  if (!r || GST_STATE(element) <= GST_STATE_READY) return false;  // before start: check_ranges says it
  const double x = as_double(value);
  if (!outside(*r, x)) return false;
  GST_ELEMENT_WARNING(element, RESOURCE, SETTINGS, ("%s=%s is outside its range, %s .. %s: kept the old value",
      pspec->name, number(x).c_str(), number(r->min).c_str(), number(r->max).c_str()), (nullptr));
  return true;
}

}  // namespace swarmlens
