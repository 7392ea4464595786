// The NATS link: RAII over nats.c 3.4, the only place that touches its handles. Connection from a
// URL list with the options users expect (user/password, token, .creds file, TLS CA and client
// certificate, name, reconnect forever with a reconnect buffer), state changes reported to the
// caller, and payloads over the server's max_payload chunked and reassembled.
//
// Threads: message and state handlers run on nats.c's threads; they must not block for long.
// Handlers never see an exception escape into nats.c: the link catches and reports it.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace swarmlens {

struct NatsOptions {
  static constexpr char kDefaultUrl[] = "nats://127.0.0.1:4222";
  std::vector<std::string> urls = {kDefaultUrl};
  std::string name = "swarmlens";
  std::string user, password;         // user/password authentication
  std::string token;                  // token authentication
  // A credentials file, for secrets kept out of command lines and URLs (a systemd credential, a
  // 0600 file): a .creds file (JWT + nkey seed), or one line "user:password", or one line with a
  // token. Read at connect; a missing, unreadable or empty file is a NatsError.
  std::string credentials_file;
  std::string tls_ca;                 // CA bundle: verify the server (turns TLS on)
  std::string tls_cert, tls_key;      // client certificate (mutual TLS)
  int reconnect_buffer_bytes = 8 << 20;
  int reconnect_wait_ms = 250;
  int connect_timeout_ms = 2000;
  // JetStream requests (the retained model) and the flush after subscribing wait this long: raise
  // it for links with seconds of latency or stalls.
  int request_timeout_ms = 5000;
  // Subscription handlers run on nats.c's shared pool of delivery threads instead of a thread per
  // subscription: for a process with many connections (a benchmark's simulated fleet).
  bool shared_delivery = false;
};

class NatsError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// What a credentials file holds (see NatsOptions::credentials_file).
struct Credentials {
  std::string creds_file;      // set when the file is a .creds file
  std::string user, password;  // "user:password"
  std::string token;           // a line without ':'
};
Credentials read_credentials_file(const std::string& path);  // throws NatsError

enum class LinkState { Disconnected, Reconnected, Closed };
const char* link_state_name(LinkState s);

class NatsLink {
 public:
  using StateHandler = std::function<void(LinkState)>;
  using MessageHandler = std::function<void(const std::string& subject, std::vector<uint8_t> payload)>;
  using ErrorHandler = std::function<void(const std::string& what)>;

  // Throws NatsError with the server URLs and nats.c's reason if no server can be reached.
  static std::unique_ptr<NatsLink> connect(const NatsOptions& opts, StateHandler on_state = {});
  ~NatsLink();
  NatsLink(const NatsLink&) = delete;
  NatsLink& operator=(const NatsLink&) = delete;

  // Publishes; a payload over max_payload goes as chunks. While disconnected, nats.c buffers up to
  // reconnect_buffer_bytes; past that this throws NatsError and the caller keeps its data.
  void publish(const std::string& subject, const std::vector<uint8_t>& payload);
  // Handler gets whole payloads (chunks reassembled), in order, on one nats.c thread; on_error gets
  // chunk and handler failures. pending_bytes bounds what may wait undelivered before nats.c drops
  // messages (a slow consumer). max_message_bytes bounds a reassembled payload; the chunks of
  // unfinished ones held at once are bounded by twice that, and dropped when they stall for
  // kChunkTimeout (checked every second, whether or not more chunks arrive).
  void subscribe(const std::string& subject, MessageHandler on_message, ErrorHandler on_error = {},
                 int64_t pending_bytes = 64ll << 20, uint64_t max_message_bytes = kMaxMessageBytes);
  static constexpr uint64_t kMaxMessageBytes = 256ull << 20;
  static constexpr int kChunkTimeoutMs = 30000;
  // Unfinished chunked payloads dropped (memory bound, timeout, inconsistent) on all subscriptions.
  uint64_t chunks_dropped() const;
  // Bytes of message payloads (and headers) this connection has received since it was made.
  uint64_t bytes_received() const;
  // Waits until the server has processed everything published so far. Throws on timeout.
  void flush(int timeout_ms = 5000);

  // JetStream retention (the server must run with JetStream). A stream keeping only the last
  // message of each subject matching `subjects` (e.g. "swarmlens.m.snapshot.*"), on file storage;
  // created if missing. Throws NatsError (no JetStream, a stream of that name with other subjects).
  // max_bytes: the stream's bound (the oldest messages go first; -1 = none). replicas: copies kept
  // on that many servers of a cluster (1 on a single server; an existing stream keeps its own).
  void ensure_retention_stream(const std::string& stream, const std::string& subjects, int64_t max_bytes = -1,
                               int replicas = 1);
  // Stores payload as chunks on <prefix>.0, <prefix>.1, ..., each with the chunk header and each
  // acknowledged by the server before the next. Throws NatsError.
  void retain(const std::string& prefix, const std::vector<uint8_t>& payload);
  // From now on, retain() stores a subject only if nothing else stored it since this link last did
  // (JetStream's expected last subject sequence; the first store of a subject by this link is
  // unconditional): a broker that lost its lease while a publish was under way cannot overwrite
  // what the broker serving now kept. The refused store throws NatsError.
  void fence_retained_writes();
  // The payload last retained under prefix in stream, or nullopt if there is none (no stream, no
  // message). Throws NatsError if JetStream does not answer; std::runtime_error for content that is
  // not a Swarmlens payload (no chunk header) or chunks that stay inconsistent (a writer racing this
  // read) after a few tries.
  std::optional<std::vector<uint8_t>> fetch_retained(const std::string& stream, const std::string& prefix);

  // A lease (leadership among brokers of a model): a key in a JetStream key-value bucket whose
  // entries expire ttl_ms after they were last written. ensure_lease_bucket makes the bucket (an
  // existing one keeps its own TTL). lease_acquire writes `holder` if the key is absent (expired,
  // released): the revision when this link now holds it, nullopt when another does. lease_renew
  // writes it again if `revision` is still the latest: the new revision, or nullopt when the lease
  // was lost (it expired and another took it). lease_holder: the value there now ("" if none).
  // lease_release deletes the key so that a standby takes over at once. Throw NatsError when
  // JetStream does not answer.
  void ensure_lease_bucket(const std::string& bucket, int ttl_ms, int replicas);
  std::optional<uint64_t> lease_acquire(const std::string& bucket, const std::string& key, const std::string& holder);
  std::optional<uint64_t> lease_renew(const std::string& bucket, const std::string& key, const std::string& holder,
                                      uint64_t revision);
  std::string lease_holder(const std::string& bucket, const std::string& key);
  void lease_release(const std::string& bucket, const std::string& key);

  // A JetStream log (the brokers' replicated journal). ensure_log_stream makes a stream keeping
  // every message on `subject` (file storage, `replicas` copies); log_append stores one message
  // (at most max_payload bytes) and returns its stream sequence once the stream has it, only if the
  // stream's last sequence is still `expect_last` (else NatsError; a fencing token: another writer
  // appended since); log_read hands every message in the stream to `each` in order (an ordered
  // consumer) and returns the stream's last sequence (0: empty since made); log_trim removes those
  // with a sequence below `sequence`. Throw NatsError.
  void ensure_log_stream(const std::string& stream, const std::string& subject, int replicas);
  uint64_t log_append(const std::string& subject, const std::vector<uint8_t>& payload, uint64_t expect_last);
  uint64_t log_read(const std::string& stream, const std::string& subject,
                    const std::function<void(uint64_t sequence, std::vector<uint8_t> payload)>& each);
  void log_trim(const std::string& stream, uint64_t sequence);
  // The stream's last message: its sequence (0 when none was ever stored) and payload. Throws NatsError.
  std::pair<uint64_t, std::vector<uint8_t>> log_last(const std::string& stream);

  bool connected() const;
  int64_t max_payload() const;
  int request_timeout_ms() const;  // NatsOptions::request_timeout_ms

 private:
  struct Impl;
  explicit NatsLink(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace swarmlens
