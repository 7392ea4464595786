#include "signing.h"

#include <sodium.h>
#include <sys/stat.h>

#include <cstring>
#include <fstream>
#include <stdexcept>

namespace swarmlens {

namespace {

constexpr char kTrailerMagic[4] = {'S', 'W', 'S', 'G'};
constexpr size_t kSigBytes = crypto_sign_BYTES;
constexpr size_t kTrailerBytes = kSigBytes + sizeof(kTrailerMagic);
static_assert(kSigBytes == 64, "Ed25519 signatures are 64 bytes");

void init_sodium() {
  if (sodium_init() < 0) throw std::runtime_error("libsodium cannot be initialised");
}

std::string to_hex(const uint8_t* data, size_t size) {
  std::string out(size * 2, '0');
  static const char digits[] = "0123456789abcdef";
  for (size_t i = 0; i < size; ++i) {
    out[2 * i] = digits[data[i] >> 4];
    out[2 * i + 1] = digits[data[i] & 15];
  }
  return out;
}

template <size_t N>
bool from_hex(const std::string& text, std::array<uint8_t, N>& out) {
  if (text.size() != 2 * N) return false;
  auto nibble = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  for (size_t i = 0; i < N; ++i) {
    const int hi = nibble(text[2 * i]), lo = nibble(text[2 * i + 1]);
    if (hi < 0 || lo < 0) return false;
    out[i] = uint8_t(hi * 16 + lo);
  }
  return true;
}

std::string first_line(const std::string& path) {
  std::ifstream in(path);
  if (!in) return {};
  std::string line;
  std::getline(in, line);
  while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.pop_back();
  return line;
}

void hash_context(crypto_sign_state* st, const std::string& kind, const std::string& model_id) {
  const std::string ctx = "swarmlens/" + kind + "/" + model_id;
  crypto_sign_update(st, reinterpret_cast<const unsigned char*>(ctx.data()), ctx.size() + 1);  // with the NUL
}

}  // namespace

SigningKey generate_signing_key() {
  init_sodium();
  SigningKey k;
  crypto_sign_keypair(k.public_key.data(), k.secret.data());
  return k;
}

SigningKey load_signing_key(const std::string& path) {
  init_sodium();
  std::array<uint8_t, crypto_sign_SEEDBYTES> seed{};
  const std::string line = first_line(path);
  if (line.empty()) throw std::runtime_error("signing key " + path + ": missing, unreadable or empty");
  if (!from_hex(line, seed)) throw std::runtime_error("signing key " + path + ": not 64 hex digits (an Ed25519 seed)");
  SigningKey k;
  crypto_sign_seed_keypair(k.public_key.data(), k.secret.data(), seed.data());
  sodium_memzero(seed.data(), seed.size());
  return k;
}

void save_signing_key(const std::string& path, const SigningKey& key) {
  {
    std::ofstream out(path, std::ios::trunc);
    if (!out) throw std::runtime_error("cannot write the signing key " + path + ": " + std::strerror(errno));
    ::chmod(path.c_str(), 0600);
    out << to_hex(key.secret.data(), crypto_sign_SEEDBYTES) << "\n";  // libsodium's sk starts with the seed
    if (!out.flush()) throw std::runtime_error("cannot write the signing key " + path);
  }
  std::ofstream pub(path + ".pub", std::ios::trunc);
  pub << public_key_hex(key.public_key) << "\n";
  if (!pub.flush()) throw std::runtime_error("cannot write the public key " + path + ".pub");
}

std::string public_key_hex(const PublicKey& key) { return to_hex(key.data(), key.size()); }

PublicKey parse_public_key(const std::string& hex_or_path) {
  PublicKey k{};
  if (from_hex(hex_or_path, k)) return k;
  const std::string line = first_line(hex_or_path);
  if (!line.empty() && from_hex(line, k)) return k;
  throw std::invalid_argument("model key '" + hex_or_path +
                              "': neither 64 hex digits nor a readable file holding them (a broker's .pub)");
}

void sign_payload(std::vector<uint8_t>& payload, const SigningKey& key, const std::string& kind,
                  const std::string& model_id) {
  init_sodium();
  crypto_sign_state st;
  crypto_sign_init(&st);
  hash_context(&st, kind, model_id);
  crypto_sign_update(&st, payload.data(), payload.size());
  unsigned char sig[kSigBytes];
  crypto_sign_final_create(&st, sig, nullptr, key.secret.data());
  payload.insert(payload.end(), sig, sig + kSigBytes);
  payload.insert(payload.end(), kTrailerMagic, kTrailerMagic + sizeof(kTrailerMagic));
}

const char* signature_name(Signature s) {
  switch (s) {
    case Signature::Valid: return "valid";
    case Signature::Unsigned: return "unsigned";
    case Signature::Invalid: return "bad_signature";
  }
  return "?";
}

Signature verify_payload(const uint8_t* data, size_t size, const std::optional<PublicKey>& key,
                         const std::string& kind, const std::string& model_id, size_t* body_size) {
  const bool trailer = size >= kTrailerBytes &&
                       std::memcmp(data + size - sizeof(kTrailerMagic), kTrailerMagic, sizeof(kTrailerMagic)) == 0;
  *body_size = trailer ? size - kTrailerBytes : size;
  if (!trailer || !key) return Signature::Unsigned;
  init_sodium();
  crypto_sign_state st;
  crypto_sign_init(&st);
  hash_context(&st, kind, model_id);
  crypto_sign_update(&st, data, *body_size);
  std::array<unsigned char, kSigBytes> sig;
  std::memcpy(sig.data(), data + *body_size, kSigBytes);
  return crypto_sign_final_verify(&st, sig.data(), key->data()) == 0 ? Signature::Valid : Signature::Invalid;
}

}  // namespace swarmlens
