// A labelled data set from a folder of images with one sub-folder per class (class names = the
// sub-folder names, sorted). Read with OpenCV: a library of its own (swarmlens-images), so that
// trainer-core stays free of it.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "dataset.h"

namespace swarmlens {

// Images are decoded, converted to grey (channels 1) or RGB (channels 3) and scaled to
// width x height. Throws std::runtime_error naming the folder or file when it cannot be used.
Dataset load_image_folder(const std::string& dir, int width, int height, int channels);

// The number of class sub-folders in an image folder.
int count_class_folders(const std::string& dir);

// The site folders in `dir` (sub-folders named site-0, site-1, ..., each an image folder with
// train/ and test/ splits, as `swarmlens scenes` writes), in site order; empty if there are none.
std::vector<std::string> site_folders(const std::string& dir);

// Width and height of the first readable image under `dir` (any depth, in path order). Throws
// std::runtime_error naming the folder if it holds no readable image.
std::pair<int, int> first_image_size(const std::string& dir);

// True if `dir` looks like an image folder (sub-folders) rather than IDX files.
bool is_image_folder(const std::string& dir);

}  // namespace swarmlens
