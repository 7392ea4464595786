// The names of the element properties that other floors set: the product's and the benchmarks'
// pipeline descriptions (pipeline/launch_desc.h). One constant per name, used by the element that
// installs the property and by the code that writes a description for it, so that renaming a
// property on one side without the other fails to compile instead of failing at run time.
#pragma once

namespace swarmlens::props {

// Every element that runs a model (modelprops.h).
inline constexpr char kModel[] = "model";
inline constexpr char kModelId[] = "model-id";
inline constexpr char kInputWidth[] = "input-width";
inline constexpr char kInputHeight[] = "input-height";
inline constexpr char kClasses[] = "classes";
inline constexpr char kDevice[] = "device";
// Every element on NATS (natsprops.h).
inline constexpr char kNatsUrl[] = "nats-url";
inline constexpr char kNatsCredentials[] = "nats-credentials";
inline constexpr char kNatsTlsCa[] = "nats-tls-ca";
inline constexpr char kModelKey[] = "model-key";
// swarmaggregate (serve)
inline constexpr char kSigningKey[] = "signing-key";

// swarmtrain
inline constexpr char kNodeId[] = "node-id";
inline constexpr char kBatchSize[] = "batch-size";
inline constexpr char kLearningRate[] = "learning-rate";
inline constexpr char kMomentum[] = "momentum";
inline constexpr char kDensity[] = "density";
inline constexpr char kValueCoding[] = "value-coding";
inline constexpr char kWarmupSteps[] = "warmup-steps";
inline constexpr char kTriggerAge[] = "trigger-age";
inline constexpr char kStatsInterval[] = "stats-interval";
inline constexpr char kLabel[] = "label";
inline constexpr char kIdlePolicy[] = "idle-policy";
inline constexpr char kLoadCeiling[] = "load-ceiling";
inline constexpr char kSchedule[] = "schedule";
inline constexpr char kCheckpoint[] = "checkpoint";
inline constexpr char kHoldoutEvery[] = "holdout-every";

}  // namespace swarmlens::props
