/* The swarmlens plugin: registers its elements, nothing else. */
#include <gst/gst.h>

#include "gstswarmaggregate.h"
#include "gstswarmclassify.h"
#include "gstswarmlabel.h"
#include "gstswarmmeta.h"
#include "gstswarmoverlay.h"
#include "gstswarmsrc.h"
#include "gstswarmtrain.h"

static gboolean plugin_init (GstPlugin * plugin) {
  /* The metas exist as soon as the plugin loads, for applications that add or read them. */
  gst_swarm_label_meta_get_info ();
  gst_swarm_classification_meta_get_info ();
  gboolean ok = FALSE;
  ok |= GST_ELEMENT_REGISTER (swarmsrc, plugin);
  ok |= GST_ELEMENT_REGISTER (swarmtrain, plugin);
  ok |= GST_ELEMENT_REGISTER (swarmclassify, plugin);
  ok |= GST_ELEMENT_REGISTER (swarmoverlay, plugin);
  ok |= GST_ELEMENT_REGISTER (swarmlabel, plugin);
  ok |= GST_ELEMENT_REGISTER (swarmaggregate, plugin);
  return ok;
}

#define PACKAGE "swarmlens"
GST_PLUGIN_DEFINE (GST_VERSION_MAJOR, GST_VERSION_MINOR, swarmlens,
    "Swarmlens: train a shared classifier on camera nodes with two-step gradient compression",
    plugin_init, "0.1.0", "Apache 2.0", "swarmlens", "https://swarmlens.invalid")
