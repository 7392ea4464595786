// The NATS options of every command, spelled one way: --nats URL[,URL...], --credentials FILE,
// --tls-ca FILE, and for commands that take models --model-key KEY. The other spellings commands used before stay as aliases (--nats-url; --creds,
// --nats-credentials; --nats-tls-ca), so scripts, unit files and config files keep working.
// Header-only: the commands link CLI11, the libraries do not.
#pragma once

#include <CLI/CLI.hpp>

#include <string>

namespace swarmlens {

// Where a command keeps each option; a null field is an option the command does not take.
struct NatsOptionFields {
  std::string* url = nullptr;
  std::string* credentials = nullptr;
  std::string* tls_ca = nullptr;
  // The credentials file must exist when the command starts; false where another process reads it
  // later (swarmlens camera's elements, whose file may be a systemd credential that exists only
  // when the unit runs, while --print-pipeline runs anywhere).
  bool check_credentials = true;
  // The broker's public key, for a command that takes models (signing.h): --model-key.
  std::string* model_key = nullptr;
};

inline void add_nats_options(CLI::App& app, const NatsOptionFields& f, const std::string& url_help) {
  if (f.url) app.add_option("--nats,--nats-url", *f.url, url_help)->capture_default_str();
  if (f.credentials) {
    auto* o = app.add_option("--credentials,--creds,--nats-credentials", *f.credentials,
                             "NATS credentials file: a .creds file, one line user:password, or a token (keeps secrets "
                             "off the command line)");
    if (f.check_credentials) o->check(CLI::ExistingFile);
  }
  if (f.tls_ca) app.add_option("--tls-ca,--nats-tls-ca", *f.tls_ca, "CA bundle to verify the NATS server (turns TLS on)");
  if (f.model_key)
    app.add_option("--model-key", *f.model_key,
                   "the broker's Ed25519 public key (64 hex digits, or the broker's .pub file): models not signed "
                   "with it are refused; without it models are trusted blindly");
}

}  // namespace swarmlens
