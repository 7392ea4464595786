/* Reads Swarmlens' metas in an application: a pipeline that plays Fashion-MNIST frames through a
 * trainer and a classifier, and a pad probe on the sink that prints each frame's true label and the
 * classifier's prediction. Build it against the installed header:
 *
 *   cc read-metas.c -o read-metas $(pkg-config --cflags --libs swarmlens-meta)
 *   ./read-metas 200
 *
 * It ends with "N frames, M classified, K correct". */
#include <stdio.h>
#include <stdlib.h>

#include <swarmlens/swarmlens-meta.h>

typedef struct {
  guint frames, classified, correct;
} Counts;

static GstPadProbeReturn
on_buffer (GstPad * pad, GstPadProbeInfo * info, gpointer data)
{
  Counts *counts = data;
  GstBuffer *buffer = GST_PAD_PROBE_INFO_BUFFER (info);
  const GstSwarmLabelMeta *truth = swarmlens_buffer_get_label_meta (buffer);
  const GstSwarmClassificationMeta *guess = swarmlens_buffer_get_classification_meta (buffer);
  (void) pad;
  counts->frames++;
  if (guess) {
    counts->classified++;
    if (truth && truth->label == guess->label)
      counts->correct++;
    printf ("frame %u: label %d, predicted %d (%.2f), model v%" G_GUINT64_FORMAT "\n", counts->frames,
        truth ? truth->label : -1, guess->label, guess->confidence, guess->model_version);
  }
  return GST_PAD_PROBE_OK;
}

int
main (int argc, char **argv)
{
  Counts counts = { 0, 0, 0 };
  GError *error = NULL;
  GstElement *pipeline, *sink;
  GstPad *pad;
  GstBus *bus;
  GstMessage *msg;
  char desc[256];
  int ok;

  gst_init (&argc, &argv);
  snprintf (desc, sizeof desc, "swarmsrc num-buffers=%d fps-n=0 ! swarmtrain drop-when-busy=false "
      "batch-size=16 ! swarmclassify ! fakesink name=sink", argc > 1 ? atoi (argv[1]) : 200);
  pipeline = gst_parse_launch (desc, &error);
  if (!pipeline || error) {
    fprintf (stderr, "read-metas: %s\n", error ? error->message : "cannot build the pipeline");
    return 1;
  }
  sink = gst_bin_get_by_name (GST_BIN (pipeline), "sink");
  pad = gst_element_get_static_pad (sink, "sink");
  gst_pad_add_probe (pad, GST_PAD_PROBE_TYPE_BUFFER, on_buffer, &counts, NULL);
  gst_object_unref (pad);
  gst_object_unref (sink);

  gst_element_set_state (pipeline, GST_STATE_PLAYING);
  bus = gst_element_get_bus (pipeline);
  msg = gst_bus_timed_pop_filtered (bus, GST_CLOCK_TIME_NONE, GST_MESSAGE_EOS | GST_MESSAGE_ERROR);
  ok = msg && GST_MESSAGE_TYPE (msg) == GST_MESSAGE_EOS;
  if (!ok && msg) {
    gst_message_parse_error (msg, &error, NULL);
    fprintf (stderr, "read-metas: %s\n", error->message);
    g_error_free (error);
  }
  if (msg)
    gst_message_unref (msg);
  gst_object_unref (bus);
  gst_element_set_state (pipeline, GST_STATE_NULL);
  gst_object_unref (pipeline);
  printf ("%u frames, %u classified, %u correct\n", counts.frames, counts.classified, counts.correct);
  return ok ? 0 : 1;
}
