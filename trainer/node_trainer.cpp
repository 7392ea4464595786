#include "node_trainer.h"

#include "camera_model.h"

#include <algorithm>
#include <cmath>
#include <chrono>
#include <fstream>
#include <stdexcept>

#include "codec.h"
#include "param_check.h"
#include "priority.h"

namespace swarmlens {

namespace {
// Held-out frames waiting for the next batch; more replace random ones (holdout_every is at least 1
// in 2, a batch at least 1 frame: the training thread takes them at about the rate they come).
constexpr size_t kHoldoutPending = 64;
}  // namespace

CompressorConfig node_compression_defaults() {
  CompressorConfig c;
  c.sparsify.warmup_stage_steps = NodeTrainerConfig::kNodeWarmupStageSteps;
  c.trigger.max_age_steps = NodeTrainerConfig::kNodeTriggerAge;
  return c;
}

NodeTrainer::NodeTrainer(NodeTrainerConfig cfg)
    : cfg_(std::move(cfg)),
      model_(Model::create(cfg_.model, cfg_.seed, cfg_.device)),
      gate_(cfg_.idle),
      global_(model_->params_copy()),
      initial_norm_(l2_norm(global_)),
      frame_size_(sample_size(cfg_.model)),
      rng_(cfg_.seed) {
  if (cfg_.batch_size == 0) throw std::invalid_argument("batch size must be >= 1");
  if (!(cfg_.lr > 0.0)) throw std::invalid_argument("learning rate must be > 0");
  if (cfg_.holdout_every == 1)
    throw std::invalid_argument("holdout-every 1 would hold out every frame and train on none: 0 (off) or 2 and up");
  cfg_.buffer_frames = std::max<size_t>(cfg_.buffer_frames, cfg_.batch_size);
  compressor_ = std::make_unique<TwoStepCompressor>(
      uint32_t(model_->num_params()), cfg_.compression,
      // Sequences start at the wall clock in microseconds: the aggregator keeps each node's last
      // sequence across restarts, and a restarted node must not be taken for a replay.
      NodeIdentity{cfg_.model_id, model_->layout_hash(), cfg_.node_id,
                   uint64_t(std::chrono::duration_cast<std::chrono::microseconds>(
                                std::chrono::system_clock::now().time_since_epoch()).count())});
  frames_.resize(cfg_.buffer_frames * frame_size_);
  labels_.resize(cfg_.buffer_frames);
}

NodeTrainer::~NodeTrainer() {
  try {
    stop();
  } catch (...) {  // a destructor must not throw; stop() reports through error()
  }
}

bool NodeTrainer::push(const float* chw, int label, bool block) {
  std::unique_lock<std::mutex> lock(mutex_);
  if (label < 0 || label >= cfg_.model.classes) {
    ++stats_.unknown_labels;
    return false;
  }
  if (cfg_.holdout_every && ++labelled_ % cfg_.holdout_every == 0) {  // held out: classified, not learnt
    ++stats_.held_out;
    size_t slot = holdout_labels_.size();
    if (slot == kHoldoutPending) {
      slot = std::uniform_int_distribution<size_t>(0, slot - 1)(rng_);
    } else {
      holdout_labels_.push_back(0);
      holdout_frames_.resize(holdout_labels_.size() * frame_size_);
    }
    std::copy(chw, chw + frame_size_, holdout_frames_.begin() + long(slot * frame_size_));
    holdout_labels_[slot] = label;
    return true;
  }
  if (block) room_.wait(lock, [&] { return !running_ || buffered_ < cfg_.buffer_frames; });
  size_t slot = buffered_;
  bool kept = true;
  if (buffered_ == cfg_.buffer_frames) {  // busy: keep a uniform sample of what arrives
    slot = std::uniform_int_distribution<size_t>(0, buffered_ - 1)(rng_);
    ++stats_.dropped;
    kept = false;
  } else {
    ++buffered_;
  }
  std::copy(chw, chw + frame_size_, frames_.begin() + long(slot * frame_size_));
  labels_[slot] = label;
  if (buffered_ >= cfg_.batch_size) wake_.notify_one();
  return kept;
}

void NodeTrainer::start() {
  // A checkpoint that could not be written at stop would lose the training: find out now.
  if (!cfg_.checkpoint.empty()) {
    check_writable(cfg_.checkpoint, "checkpoint");
    check_writable(state_path(), "checkpoint state");
  }
  if (!cfg_.checkpoint.empty() && std::ifstream(cfg_.checkpoint).good()) {
    Snapshot s = load_snapshot(cfg_.checkpoint);
    if (s.layout_hash != model_->layout_hash() || s.params.size() != global_.size())
      throw std::runtime_error(cfg_.checkpoint + ": checkpoint is for another model layout");
    global_ = std::move(s.params);
    version_ = s.version;
    if (s.description.class_names.size() == size_t(cfg_.model.classes)) class_names_ = s.description.class_names;
    // The compressor's state beside it: residual, momentum and the update not yet sent.
    if (const auto bytes = read_file_bytes(state_path())) compressor_->load_state(bytes->data(), bytes->size(), state_path());
  }
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (running_) return;
    running_ = true;
    error_.clear();
    stats_.model_version = version_;
  }
  publish();
  thread_ = std::thread([this] { run(); });
}

void NodeTrainer::stop() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (!running_ && !thread_.joinable()) return;
    running_ = false;
  }
  wake_.notify_all();
  room_.notify_all();
  if (thread_.joinable()) thread_.join();
  // Nothing accepted is lost: what is pending is sent (federated) or applied (standalone).
  if (auto msg = compressor_->flush()) deliver(*msg);
  {
    std::lock_guard<std::mutex> lock(mutex_);  // the last update counts too
    stats_.bytes_out = compressor_->bytes_out();
    stats_.messages = compressor_->messages();
    stats_.model_version = version_;
  }
  publish();
  if (!cfg_.checkpoint.empty()) {
    write_file_atomically(state_path(), compressor_->save_state());
    Snapshot s{cfg_.model.name, model_->layout_hash(), version_, global_};
    s.description = describe_model(cfg_.model, class_names_);
    save_snapshot(cfg_.checkpoint, s);
  }
}

std::string NodeTrainer::state_path() const { return cfg_.checkpoint + ".state"; }

void NodeTrainer::set_uplink(Uplink send) { uplink_ = std::move(send); }

void NodeTrainer::offer_model(std::shared_ptr<const Snapshot> model) {
  if (!model || model->layout_hash != model_->layout_hash() || model->params.size() != global_.size()) return;
  const bool refused = !check_model(model->params, cfg_.max_model_norm_factor * initial_norm_).empty();
  std::lock_guard<std::mutex> lock(mutex_);
  if (refused) {  // a wrecked or forged model: keep training on the one we have
    ++stats_.models_refused;
    return;
  }
  if (!offered_ || offered_->version < model->version) offered_ = std::move(model);
}

void NodeTrainer::note_answer(bool delivered, const std::string& verdict) {
  TrainStats now;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (delivered) {
      stats_.last_refusal.clear();
    } else {
      ++stats_.updates_refused;
      stats_.last_refusal = verdict;
    }
    now = stats_;
  }
  ModelHub::instance().publish_stats(cfg_.model_id, now);  // the overlay shows it at once
}

void NodeTrainer::drain() {
  std::unique_lock<std::mutex> lock(mutex_);
  // A paused trainer has nothing to drain now: what is buffered waits for it to resume.
  room_.wait(lock, [&] {
    return !running_ || (!training_ && (buffered_ < cfg_.batch_size || stats_.state != TrainState::Training));
  });
}

TrainStats NodeTrainer::stats() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return stats_;
}

std::string NodeTrainer::error() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return error_;
}

void NodeTrainer::run() {
  std::vector<float> images;
  std::vector<int64_t> labels;
  set_thread_nice(cfg_.idle.nice);  // best effort: the video path and the device's work come first
  for (;;) {
    {
      TrainState state;
      try {
        state = gate_.check();
      } catch (const std::exception& e) {  // /proc unreadable: say so rather than train unchecked
        std::lock_guard<std::mutex> lock(mutex_);
        error_ = std::string("idle policy: ") + e.what();
        running_ = false;
        room_.notify_all();
        return;
      }
      bool changed;
      {
        std::lock_guard<std::mutex> lock(mutex_);
        changed = stats_.state != state;
        if (changed && state != TrainState::Training) ++stats_.pauses;
        stats_.state = state;
        stats_.other_load = gate_.last_load();
      }
      if (changed) {
        ModelHub::instance().publish_stats(cfg_.model_id, stats());  // the overlay shows it
        room_.notify_all();                                          // drain() stops waiting on a pause
      }
      std::unique_lock<std::mutex> lock(mutex_);
      if (state != TrainState::Training) {  // paused: keep everything, look again shortly
        wake_.wait_for(lock, std::chrono::milliseconds(100), [&] { return !running_; });
        if (!running_) return;
        continue;
      }
      wake_.wait_for(lock, cfg_.idle.mode == IdleMode::Always ? std::chrono::hours(24) : cfg_.idle.sample_every,
                     [&] { return !running_ || buffered_ >= cfg_.batch_size; });
      if (!running_) return;
      if (buffered_ < cfg_.batch_size) continue;  // no batch yet: look at the policy again
      // Take the newest batch_size frames; older ones stay for the next batch.
      const size_t first = buffered_ - cfg_.batch_size;
      images.assign(frames_.begin() + long(first * frame_size_),
                    frames_.begin() + long(buffered_ * frame_size_));
      labels.assign(labels_.begin() + long(first), labels_.begin() + long(buffered_));
      buffered_ = first;
      training_ = true;
    }
    room_.notify_all();
    try {
      train_batch(images, labels);
    } catch (const std::exception& e) {
      std::lock_guard<std::mutex> lock(mutex_);
      error_ = e.what();
      running_ = false;
      training_ = false;
      room_.notify_all();
      return;
    }
    {
      std::lock_guard<std::mutex> lock(mutex_);
      training_ = false;
    }
    room_.notify_all();
  }
}

void NodeTrainer::evaluate_holdout(const std::vector<float>& images, const std::vector<int64_t>& labels) {
  if (labels.empty()) return;
  std::vector<int64_t> predicted(labels.size());
  model_->predict(images.data(), labels.size(), predicted.data());
  std::lock_guard<std::mutex> lock(mutex_);
  for (size_t i = 0; i < labels.size(); ++i) {
    const uint8_t hit = predicted[i] == labels[i];
    if (holdout_hits_.size() < NodeTrainerConfig::kHoldoutWindow) {
      holdout_hits_.push_back(hit);
    } else {
      holdout_correct_ -= holdout_hits_[holdout_next_];
      holdout_hits_[holdout_next_] = hit;
      holdout_next_ = (holdout_next_ + 1) % holdout_hits_.size();
    }
    holdout_correct_ += hit;
  }
  stats_.holdout_samples = holdout_hits_.size();
  stats_.holdout_accuracy = double(holdout_correct_) / double(holdout_hits_.size());
}

void NodeTrainer::train_batch(std::vector<float>& images, std::vector<int64_t>& labels) {
  std::shared_ptr<const Snapshot> offered;
  std::vector<float> holdout_images;
  std::vector<int64_t> holdout_labels;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    offered.swap(offered_);
    holdout_images.swap(holdout_frames_);
    holdout_labels.swap(holdout_labels_);
  }
  if (offered && offered->version > version_) {  // the aggregator's newer model replaces our view
    global_ = offered->params;
    version_ = offered->version;
    if (offered->description.class_names.size() == size_t(cfg_.model.classes)) class_names_ = offered->description.class_names;
    // ...plus our own updates it does not include yet (still in flight), so none is lost from the
    // view or learnt twice.
    const auto it = offered->applied.find(cfg_.node_id);
    const uint64_t applied = it == offered->applied.end() ? 0 : it->second;
    in_flight_.erase(in_flight_.begin(), in_flight_.upper_bound(applied));
    for (const auto& [seq, update] : in_flight_) scatter_add(update, -float(cfg_.lr), global_.data());
  }
  model_->set_params(global_.data());
  compressor_->apply_pending(model_->params(), float(cfg_.lr));  // train on own unsent progress
  evaluate_holdout(holdout_images, holdout_labels);  // on the model as it is before this batch
  const StepStats st = model_->compute_gradient({images.data(), labels.data(), labels.size()});
  std::optional<std::vector<uint8_t>> msg;
  try {
    msg = compressor_->step(model_->grad(), labels.size(), version_);
  } catch (const std::invalid_argument&) {
    // NaN/Inf gradient: this batch is skipped, the residual stays intact; counted and shown, so a
    // node that no longer learns does not pass for one that does.
    std::lock_guard<std::mutex> lock(mutex_);
    ++stats_.skipped_batches;
    stats_.diverged = true;
    return;
  }
  if (msg) deliver(*msg);
  bool do_publish = false;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    TrainStats& s = stats_;
    const double a = s.steps == 0 ? 1.0 : 0.1;  // moving averages over ~10 steps
    s.loss = (1 - a) * s.loss + a * st.loss;
    s.train_accuracy = (1 - a) * s.train_accuracy + a * double(st.correct) / double(labels.size());
    ++s.steps;
    s.diverged = false;
    s.samples += labels.size();
    s.bytes_out = compressor_->bytes_out();
    s.messages = compressor_->messages();
    s.dense_bytes += model_->num_params() * sizeof(float);
    s.model_version = version_;
    do_publish = s.steps % cfg_.publish_every == 0;
  }
  if (do_publish) publish();
}

void NodeTrainer::deliver(const std::vector<uint8_t>& msg) {
  if (uplink_ && !uplink_(msg)) {
    compressor_->requeue(msg);  // link down: merged back into the pending update, sent with the next
    return;
  }
  // Standalone, the update is this node's model step. Federated, it is applied to the node's own
  // view at once as well, so the node does not train on a model missing its own progress until the
  // aggregator's next model (which replaces this view) arrives.
  auto d = decode_update(msg);
  scatter_add(d.value.update, -float(cfg_.lr), global_.data());
  if (!uplink_) ++version_;
  else if (in_flight_.size() < 4096) in_flight_.emplace(d.value.header.sequence, std::move(d.value.update));
}

void NodeTrainer::publish() {
  auto snap = std::make_shared<Snapshot>();
  snap->model = cfg_.model.name;
  snap->layout_hash = model_->layout_hash();
  snap->version = version_;
  snap->params = global_;
  snap->description = describe_model(cfg_.model, class_names_);
  ModelHub::instance().publish(cfg_.model_id, std::move(snap));
  ModelHub::instance().publish_stats(cfg_.model_id, stats());
}

}  // namespace swarmlens
