// Signed messages: the broker signs every model it publishes (snapshots, deltas, in JetStream and on
// the model subject) and every acknowledgement, with Ed25519 (libsodium); nodes, classifiers, gateways
// and `swarmlens export` verify with the broker's public key. A forged model or ack is then refused
// even from a peer that may publish on the subject.
//
// A signed payload is the payload followed by a trailer (docs/wire-format.md):
//   payload | signature (64 bytes) | "SWSG"
// The signature is Ed25519ph (libsodium's crypto_sign_init/update/final) over
//   "swarmlens/<kind>/<model id>" | 0x00 | payload
// so a model cannot be passed off as an ack, nor one model id's message as another's.
//
// Keys: a secret key file holds the 32-byte Ed25519 seed as 64 hex digits on one line (mode 0600);
// a public key is 64 hex digits, given inline or as the path of a file that holds them.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace swarmlens {

using PublicKey = std::array<uint8_t, 32>;

struct SigningKey {
  std::array<uint8_t, 64> secret{};  // libsodium's secret key (seed and public key)
  PublicKey public_key{};
};

inline constexpr const char* kSignedModel = "model";
inline constexpr const char* kSignedAck = "ack";

SigningKey generate_signing_key();
// Reads a secret key file. Throws std::runtime_error naming the path and the problem.
SigningKey load_signing_key(const std::string& path);
// Writes `path` (mode 0600, the seed) and `path`.pub (the public key). Throws std::runtime_error.
void save_signing_key(const std::string& path, const SigningKey& key);
std::string public_key_hex(const PublicKey& key);
// 64 hex digits, or the path of a file whose first line holds them. Throws std::invalid_argument.
PublicKey parse_public_key(const std::string& hex_or_path);

// Appends the trailer.
void sign_payload(std::vector<uint8_t>& payload, const SigningKey& key, const std::string& kind,
                  const std::string& model_id);

enum class Signature { Valid, Unsigned, Invalid };
const char* signature_name(Signature s);  // "valid", "unsigned", "bad_signature"
// Checks the trailer of `data[0, size)` and sets *body_size to the payload's size without it (a
// trailer is stripped with or without a key). With no key nothing is checked: Unsigned.
Signature verify_payload(const uint8_t* data, size_t size, const std::optional<PublicKey>& key,
                         const std::string& kind, const std::string& model_id, size_t* body_size);

// What a receiver trusts: models and acks signed by this key (none: anything, said once at start).
struct ModelTrust {
  // The default bound on a model's parameter norm, as a multiple of the initial model's.
  static constexpr double kDefaultNormFactor = 20.0;
  std::optional<PublicKey> key;
  // The parameter norm above which a model is refused as exploding (0 = only finiteness is checked).
  double max_norm = 0.0;
  // The largest model message taken (chunks reassembled); 0 = the link's default bound.
  uint64_t max_model_bytes = 0;
  // The model this side runs: a model of another layout is refused with a message naming both
  // (model_mismatch). layout_hash 0 = any model.
  uint64_t layout_hash = 0;
  std::string runs;  // this side's model as describe() says it, for that message
};

}  // namespace swarmlens
