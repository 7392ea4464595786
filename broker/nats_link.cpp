#include "nats_link.h"

#include <nats/nats.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <iterator>
#include <chrono>
#include <condition_variable>
#include <list>
#include <map>
#include <mutex>
#include <set>
#include <random>
#include <thread>

#include "chunks.h"

namespace swarmlens {

namespace {

struct OptionsDeleter {
  void operator()(natsOptions* o) const { natsOptions_Destroy(o); }
};
struct ConnectionDeleter {
  void operator()(natsConnection* c) const { natsConnection_Destroy(c); }
};
struct SubscriptionDeleter {
  void operator()(natsSubscription* s) const { natsSubscription_Destroy(s); }
};
struct MsgDeleter {
  void operator()(natsMsg* m) const { natsMsg_Destroy(m); }
};
using OptionsPtr = std::unique_ptr<natsOptions, OptionsDeleter>;
using ConnectionPtr = std::unique_ptr<natsConnection, ConnectionDeleter>;
using SubscriptionPtr = std::unique_ptr<natsSubscription, SubscriptionDeleter>;
using MsgPtr = std::unique_ptr<natsMsg, MsgDeleter>;
struct JsDeleter {
  void operator()(jsCtx* j) const { jsCtx_Destroy(j); }
};
using JsPtr = std::unique_ptr<jsCtx, JsDeleter>;
struct KvDeleter {
  void operator()(kvStore* k) const { kvStore_Destroy(k); }
};
using KvPtr = std::unique_ptr<kvStore, KvDeleter>;

void check_js(natsStatus s, jsErrCode jerr, const std::string& what) {
  if (s != NATS_OK) {
    const char* last = nats_GetLastError(nullptr);
    throw NatsError(what + ": " + natsStatus_GetText(s) + (jerr ? " (JetStream error " + std::to_string(int(jerr)) + ")" : "") +
                    (last && *last ? std::string(" (") + last + ")" : "") +
                    (s == NATS_NO_RESPONDERS || s == NATS_TIMEOUT ? "; is JetStream enabled on the server (nats-server -js)?" : ""));
  }
}

void check(natsStatus s, const std::string& what) {
  if (s != NATS_OK) {
    const char* last = nats_GetLastError(nullptr);
    throw NatsError(what + ": " + natsStatus_GetText(s) + (last && *last ? std::string(" (") + last + ")" : ""));
  }
}

// Headroom under max_payload for the protocol line and our header.
constexpr int64_t kChunkHeadroom = 4096;

// How payloads over a server's max_payload are cut: chunks of this size at most.
size_t chunk_size(int64_t max_payload) { return size_t(std::max<int64_t>(1024, max_payload - kChunkHeadroom)); }

// Chunk info.index of `payload` (cut in chunks of `chunk` bytes) as a message on `subject`, with the
// chunk header.
MsgPtr chunk_message(const std::string& subject, const std::vector<uint8_t>& payload, size_t chunk, const ChunkInfo& info) {
  const size_t off = size_t(info.index) * chunk, len = std::min(chunk, payload.size() - off);
  natsMsg* raw = nullptr;
  check(natsMsg_Create(&raw, subject.c_str(), nullptr, reinterpret_cast<const char*>(payload.data() + off), int(len)),
        "message on " + subject);
  MsgPtr msg(raw);
  check(natsMsgHeader_Set(msg.get(), kChunkHeader, info.to_header().c_str()), "chunk header");
  return msg;
}

}  // namespace

const char* link_state_name(LinkState s) {
  switch (s) {
    case LinkState::Disconnected: return "disconnected";
    case LinkState::Reconnected: return "reconnected";
    case LinkState::Closed: return "closed";
  }
  return "?";
}

struct NatsLink::Impl {
  struct Subscription {
    NatsLink::Impl* link = nullptr;
    MessageHandler on_message;
    ErrorHandler on_error;
    std::mutex lock;  // protects assembler: nats.c may deliver from its own thread per subscription
    ChunkAssembler assembler;
    Subscription(uint64_t max_bytes)
        : assembler(std::chrono::milliseconds(kChunkTimeoutMs), 64, max_bytes, 2 * max_bytes) {}
    SubscriptionPtr sub;
    bool complete = false;  // under link->state_lock: closed, and its handler has returned for good
  };

  OptionsPtr opts;
  ConnectionPtr conn;
  std::mutex js_lock;  // protects js (made on first use)
  JsPtr js;
  int request_timeout_ms = 5000;
  // Kept messages are read with JetStream's direct get (the payload as it was stored) unless a
  // stream did not answer one (a stream made before AllowDirect was set, by an older broker): from
  // then on that stream is read with the stream API, whose JSON reply carries the payload in base64
  // (a third more bytes on the wire).
  std::set<std::string> no_direct_get;  // under js_lock
  std::map<std::string, KvPtr> buckets;  // lease buckets, under js_lock
  // fence_retained_writes: each subject's sequence as this link last stored it (under js_lock).
  bool fenced_writes = false;
  std::map<std::string, uint64_t> written;

  kvStore* bucket(const std::string& name) {  // caller holds js_lock
    auto it = buckets.find(name);
    if (it != buckets.end()) return it->second.get();
    kvStore* kv = nullptr;
    check(js_KeyValue(&kv, jetstream(), name.c_str()), "JetStream key-value bucket " + name);
    return buckets.emplace(name, KvPtr(kv)).first->second.get();
  }

  jsCtx* jetstream() {  // caller holds js_lock
    if (!js) {
      jsCtx* raw = nullptr;
      jsOptions jo;
      check(jsOptions_Init(&jo), "JetStream options");
      jo.Wait = request_timeout_ms;
      check(natsConnection_JetStream(&raw, conn.get(), &jo), "JetStream context");
      js.reset(raw);
    }
    return js.get();
  }
  // State callbacks arrive on nats.c's threads, the closed one even after natsConnection_Close
  // returns. state_lock protects on_state and closed; the destructor disarms on_state, closes, and
  // waits for `closed` before anything a callback can reach is destroyed.
  std::mutex state_lock;
  std::condition_variable closed_cv;
  bool closed = false;
  StateHandler on_state;
  std::mutex subs_lock;  // protects subs (the list; each entry is used by its own callback)
  std::list<std::unique_ptr<Subscription>> subs;
  std::atomic<uint64_t> next_chunk_id{0};
  // Expires stalled chunked payloads once a second, so a sender that stops mid-payload cannot keep
  // memory held until someone else's chunk arrives.
  std::mutex sweep_lock;
  std::condition_variable sweep_cv;
  bool sweep_stop = false;
  std::thread sweeper;

  void sweep_loop() {
    std::unique_lock<std::mutex> l(sweep_lock);
    while (!sweep_cv.wait_for(l, std::chrono::seconds(1), [&] { return sweep_stop; })) {
      l.unlock();
      std::lock_guard<std::mutex> g(subs_lock);
      for (auto& s : subs) {
        std::string error;
        {
          std::lock_guard<std::mutex> a(s->lock);
          error = s->assembler.expire();
        }
        if (!error.empty() && s->on_error) {
          try {
            s->on_error(error);
          } catch (...) {
          }
        }
      }
      l.lock();
    }
  }
  void stop_sweeper() {
    {
      std::lock_guard<std::mutex> g(sweep_lock);
      sweep_stop = true;
    }
    sweep_cv.notify_all();
    if (sweeper.joinable()) sweeper.join();
  }

  void report(LinkState s) {
    std::lock_guard<std::mutex> g(state_lock);
    if (on_state) {
      try {
        on_state(s);
      } catch (...) {  // never into nats.c
      }
    }
    if (s == LinkState::Closed) {
      closed = true;
      closed_cv.notify_all();
    }
  }

  static void on_disconnected(natsConnection*, void* self) { static_cast<Impl*>(self)->report(LinkState::Disconnected); }
  static void on_reconnected(natsConnection*, void* self) { static_cast<Impl*>(self)->report(LinkState::Reconnected); }
  static void on_closed(natsConnection*, void* self) { static_cast<Impl*>(self)->report(LinkState::Closed); }

  // nats.c calls this once a closed subscription's handler has returned for the last time: only then
  // may what the handler reaches be destroyed.
  static void on_complete(void* closure) {
    auto* s = static_cast<Subscription*>(closure);
    std::lock_guard<std::mutex> g(s->link->state_lock);
    s->complete = true;
    s->link->closed_cv.notify_all();
  }

  // nats.c's message callback: never throws, always destroys the message.
  static void on_msg(natsConnection*, natsSubscription*, natsMsg* raw, void* closure) {
    MsgPtr msg(raw);
    auto* s = static_cast<Subscription*>(closure);
    try {
      const char* subject = natsMsg_GetSubject(msg.get());
      const auto* data = reinterpret_cast<const uint8_t*>(natsMsg_GetData(msg.get()));
      const size_t size = size_t(natsMsg_GetDataLength(msg.get()));
      const char* chunk = nullptr;
      if (natsMsgHeader_Get(msg.get(), kChunkHeader, &chunk) != NATS_OK || !chunk) {
        s->on_message(subject, std::vector<uint8_t>(data, data + size));
        return;
      }
      const auto info = ChunkInfo::parse(chunk);
      if (!info) {
        if (s->on_error) s->on_error(std::string("malformed chunk header: ") + chunk);
        return;
      }
      ChunkAssembler::Result r;
      {
        std::lock_guard<std::mutex> g(s->lock);
        r = s->assembler.add(*info, data, size);
      }
      if (!r.error.empty() && s->on_error) s->on_error(r.error);
      if (r.payload) s->on_message(subject, std::move(*r.payload));
    } catch (const std::exception& e) {
      if (s->on_error) {
        try {
          s->on_error(std::string("message handler failed: ") + e.what());
        } catch (...) {
        }
      }
    } catch (...) {
    }
  }
};

NatsLink::NatsLink(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

NatsLink::~NatsLink() {
  impl_->stop_sweeper();
  {
    std::lock_guard<std::mutex> g(impl_->state_lock);
    impl_->on_state = nullptr;  // disarmed: the owner may already be gone
  }
  // Close first so that no message callback runs while the subscriptions and handlers go away, and
  // wait for nats.c's closed callback, which it delivers on its own thread.
  // Also wait until every subscription's handler has returned for the last time (nats.c may still be
  // running one when Close returns).
  if (impl_->conn) {
    natsConnection_Close(impl_->conn.get());
    std::lock_guard<std::mutex> subs(impl_->subs_lock);
    std::unique_lock<std::mutex> l(impl_->state_lock);
    impl_->closed_cv.wait_for(l, std::chrono::seconds(5), [&] {
      if (!impl_->closed) return false;
      for (const auto& s : impl_->subs)
        if (!s->complete) return false;
      return true;
    });
  }
  {
    std::lock_guard<std::mutex> g(impl_->subs_lock);
    impl_->subs.clear();
  }
  impl_->js.reset();
  impl_->conn.reset();
}

Credentials read_credentials_file(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw NatsError("cannot read the NATS credentials file " + path + ": " + std::strerror(errno));
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  Credentials c;
  if (text.find("-----BEGIN NATS USER JWT-----") != std::string::npos) {
    c.creds_file = path;
    return c;
  }
  std::string line = text.substr(0, text.find('\n'));
  while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.pop_back();
  if (line.empty()) throw NatsError("the NATS credentials file " + path + " is empty (want user:password, a token or a .creds file)");
  const auto colon = line.find(':');
  if (colon == std::string::npos) c.token = line;
  else {
    c.user = line.substr(0, colon);
    c.password = line.substr(colon + 1);
  }
  return c;
}

std::unique_ptr<NatsLink> NatsLink::connect(const NatsOptions& o, StateHandler on_state) {
  const Credentials c = o.credentials_file.empty() ? Credentials{} : read_credentials_file(o.credentials_file);
  auto impl = std::make_unique<Impl>();
  impl->on_state = std::move(on_state);
  natsOptions* raw = nullptr;
  check(natsOptions_Create(&raw), "nats options");
  impl->opts.reset(raw);
  natsOptions* opts = impl->opts.get();
  std::vector<const char*> urls;
  for (const auto& u : o.urls) urls.push_back(u.c_str());
  if (urls.empty()) throw NatsError("no NATS server URL given");
  check(natsOptions_SetServers(opts, urls.data(), int(urls.size())), "server URLs");
  check(natsOptions_SetName(opts, o.name.c_str()), "connection name");
  // The credentials file, where given, wins over the user/password and token fields.
  const std::string& user = c.user.empty() ? o.user : c.user;
  const std::string& password = c.user.empty() ? o.password : c.password;
  const std::string& token = c.token.empty() ? o.token : c.token;
  if (!user.empty()) {
    check(natsOptions_SetUserInfo(opts, user.c_str(), password.c_str()), "user/password");
    // Replies (JetStream, flush) come to _INBOX.<user>.>: the server can then let each login read
    // only its own inboxes (samples/nats/swarmlens-nats.conf).
    if (user.find_first_of(".*> \t") != std::string::npos)
      throw NatsError("NATS user '" + user + "': '.', '*', '>' and blanks are not allowed in a user name");
    check(natsOptions_SetCustomInboxPrefix(opts, ("_INBOX." + user).c_str()), "inbox prefix");
  }
  if (!token.empty()) check(natsOptions_SetToken(opts, token.c_str()), "token");
  if (!c.creds_file.empty())
    check(natsOptions_SetUserCredentialsFromFiles(opts, c.creds_file.c_str(), nullptr), "credentials " + c.creds_file);
  if (!o.tls_ca.empty()) {
    check(natsOptions_SetSecure(opts, true), "TLS");
    check(natsOptions_LoadCATrustedCertificates(opts, o.tls_ca.c_str()), "TLS CA " + o.tls_ca);
  }
  if (!o.tls_cert.empty())
    check(natsOptions_LoadCertificatesChain(opts, o.tls_cert.c_str(), o.tls_key.c_str()), "TLS client certificate");
  if (o.shared_delivery) check(natsOptions_UseGlobalMessageDelivery(opts, true), "shared delivery threads");
  check(natsOptions_SetMaxReconnect(opts, -1), "reconnect forever");
  check(natsOptions_SetReconnectWait(opts, o.reconnect_wait_ms), "reconnect wait");
  check(natsOptions_SetReconnectBufSize(opts, o.reconnect_buffer_bytes), "reconnect buffer");
  check(natsOptions_SetTimeout(opts, o.connect_timeout_ms), "connect timeout");
  check(natsOptions_SetDisconnectedCB(opts, &Impl::on_disconnected, impl.get()), "callbacks");
  check(natsOptions_SetReconnectedCB(opts, &Impl::on_reconnected, impl.get()), "callbacks");
  check(natsOptions_SetClosedCB(opts, &Impl::on_closed, impl.get()), "callbacks");
  natsConnection* conn = nullptr;
  std::string list;
  for (const auto& u : o.urls) list += (list.empty() ? "" : ",") + u;
  check(natsConnection_Connect(&conn, opts), "cannot connect to NATS at " + list);
  impl->conn.reset(conn);
  impl->request_timeout_ms = o.request_timeout_ms;
  impl->next_chunk_id = std::random_device{}() * 0x100000000ull;
  return std::unique_ptr<NatsLink>(new NatsLink(std::move(impl)));
}

void NatsLink::publish(const std::string& subject, const std::vector<uint8_t>& payload) {
  const int64_t limit = max_payload();
  if (int64_t(payload.size()) <= limit) {
    check(natsConnection_Publish(impl_->conn.get(), subject.c_str(), payload.data(), int(payload.size())),
          "publish on " + subject);
    return;
  }
  const size_t chunk = chunk_size(limit);
  ChunkInfo info;
  info.id = impl_->next_chunk_id++;
  info.count = uint32_t((payload.size() + chunk - 1) / chunk);
  info.total = payload.size();
  for (info.index = 0; info.index < info.count; ++info.index) {
    const MsgPtr msg = chunk_message(subject, payload, chunk, info);
    check(natsConnection_PublishMsg(impl_->conn.get(), msg.get()), "publish chunk on " + subject);
  }
}

void NatsLink::subscribe(const std::string& subject, MessageHandler on_message, ErrorHandler on_error,
                         int64_t pending_bytes, uint64_t max_message_bytes) {
  auto s = std::make_unique<Impl::Subscription>(max_message_bytes);
  s->link = impl_.get();
  s->on_message = std::move(on_message);
  s->on_error = std::move(on_error);
  natsSubscription* raw = nullptr;
  check(natsConnection_Subscribe(&raw, impl_->conn.get(), subject.c_str(), &Impl::on_msg, s.get()),
        "subscribe to " + subject);
  s->sub.reset(raw);
  check(natsSubscription_SetOnCompleteCB(raw, &Impl::on_complete, s.get()), "completion callback on " + subject);
  check(natsSubscription_SetPendingLimits(raw, -1, int(std::min<int64_t>(pending_bytes, INT32_MAX))),
        "pending limits on " + subject);
  std::lock_guard<std::mutex> g(impl_->subs_lock);
  impl_->subs.push_back(std::move(s));
  if (!impl_->sweeper.joinable()) impl_->sweeper = std::thread([impl = impl_.get()] { impl->sweep_loop(); });
}

uint64_t NatsLink::chunks_dropped() const {
  std::lock_guard<std::mutex> g(impl_->subs_lock);
  uint64_t n = 0;
  for (auto& s : impl_->subs) {
    std::lock_guard<std::mutex> a(s->lock);
    n += s->assembler.dropped();
  }
  return n;
}

uint64_t NatsLink::bytes_received() const {
  natsStatistics* stats = nullptr;
  check(natsStatistics_Create(&stats), "statistics");
  uint64_t in_bytes = 0;
  const natsStatus s = natsConnection_GetStats(impl_->conn.get(), stats);
  if (s == NATS_OK) natsStatistics_GetCounts(stats, nullptr, &in_bytes, nullptr, nullptr, nullptr);
  natsStatistics_Destroy(stats);
  check(s, "connection statistics");
  return in_bytes;
}

int NatsLink::request_timeout_ms() const { return impl_->request_timeout_ms; }

void NatsLink::flush(int timeout_ms) { check(natsConnection_FlushTimeout(impl_->conn.get(), timeout_ms), "flush"); }

namespace {
// Creates a stream over one subject (file storage, `replicas` copies); `tune` sets the rest. A peer
// that created it first is no error.
void add_stream(jsCtx* js, const std::string& stream, const std::string& subject, int replicas,
                const std::function<void(jsStreamConfig&)>& tune) {
  jsStreamConfig cfg;
  jsStreamConfig_Init(&cfg);
  const char* subj = subject.c_str();
  cfg.Name = stream.c_str();
  cfg.Subjects = &subj;
  cfg.SubjectsLen = 1;
  cfg.Storage = js_FileStorage;
  cfg.Replicas = int64_t(replicas);
  tune(cfg);
  jsStreamInfo* info = nullptr;
  jsErrCode jerr = jsErrCode(0);
  const natsStatus s = js_AddStream(&info, js, &cfg, nullptr, &jerr);
  if (s == NATS_OK) jsStreamInfo_Destroy(info);
  else if (jerr != JSStreamNameExistErr) check_js(s, jerr, "create JetStream stream " + stream);
}
}  // namespace

void NatsLink::ensure_retention_stream(const std::string& stream, const std::string& subjects, int64_t max_bytes,
                                       int replicas) {
  std::lock_guard<std::mutex> g(impl_->js_lock);
  jsCtx* js = impl_->jetstream();
  jsStreamInfo* info = nullptr;
  jsErrCode jerr = jsErrCode(0);
  natsStatus s = js_GetStreamInfo(&info, js, stream.c_str(), nullptr, &jerr);
  if (s == NATS_OK) {
    const bool same = info->Config->SubjectsLen == 1 && subjects == info->Config->Subjects[0];
    if (same && !info->Config->AllowDirect) {  // made by an older broker: nodes read it directly from now on
      info->Config->AllowDirect = true;
      jsStreamInfo* updated = nullptr;
      jerr = jsErrCode(0);
      s = js_UpdateStream(&updated, js, info->Config, nullptr, &jerr);
      jsStreamInfo_Destroy(updated);
      if (s != NATS_OK) {
        jsStreamInfo_Destroy(info);
        check_js(s, jerr, "allow direct reads of JetStream stream " + stream);
      }
    }
    jsStreamInfo_Destroy(info);
    if (!same) throw NatsError("JetStream stream " + stream + " exists for other subjects than " + subjects);
    return;
  }
  if (s != NATS_NOT_FOUND) check_js(s, jerr, "JetStream stream " + stream);
  add_stream(js, stream, subjects, replicas, [&](jsStreamConfig& cfg) {
    cfg.MaxMsgsPerSubject = 1;  // the latest value per subject, as a KV bucket keeps it
    cfg.MaxBytes = max_bytes;
    cfg.Discard = js_DiscardOld;
    cfg.AllowDirect = true;  // nodes read kept messages as stored, not base64 in a JSON reply
  });
}

void NatsLink::retain(const std::string& prefix, const std::vector<uint8_t>& payload) {
  const size_t chunk = chunk_size(max_payload());
  ChunkInfo info;
  info.id = impl_->next_chunk_id++;
  info.count = uint32_t(std::max<size_t>(1, (payload.size() + chunk - 1) / chunk));
  info.total = payload.size();
  std::lock_guard<std::mutex> g(impl_->js_lock);
  jsCtx* js = impl_->jetstream();
  for (info.index = 0; info.index < info.count; ++info.index) {
    const std::string subject = prefix + "." + std::to_string(info.index);
    const MsgPtr msg = chunk_message(subject, payload, chunk, info);
    jsPubOptions po;
    check(jsPubOptions_Init(&po), "JetStream publish options");
    const auto written = impl_->written.find(subject);
    if (impl_->fenced_writes && written != impl_->written.end()) po.ExpectLastSubjectSeq = written->second;
    jsPubAck* ack = nullptr;
    jsErrCode jerr = jsErrCode(0);
    const natsStatus s = js_PublishMsg(&ack, js, msg.get(), &po, &jerr);
    const uint64_t seq = s == NATS_OK && ack ? ack->Sequence : 0;
    jsPubAck_Destroy(ack);
    if (jerr == JSStreamWrongLastSequenceErr)
      throw NatsError("JetStream publish on " + subject + ": another writer stored it since this link did (fenced)");
    check_js(s, jerr, "JetStream publish on " + subject);
    if (impl_->fenced_writes) impl_->written[subject] = seq;
  }
}

void NatsLink::fence_retained_writes() {
  std::lock_guard<std::mutex> g(impl_->js_lock);
  impl_->fenced_writes = true;
}

std::optional<std::vector<uint8_t>> NatsLink::fetch_retained(const std::string& stream, const std::string& prefix) {
  std::lock_guard<std::mutex> g(impl_->js_lock);
  jsCtx* js = impl_->jetstream();
  std::string last_error;
  for (int attempt = 0; attempt < 8; ++attempt) {
    if (attempt) std::this_thread::sleep_for(std::chrono::milliseconds(50 * attempt));
    ChunkAssembler assembler;
    std::optional<ChunkInfo> first;
    for (uint32_t i = 0; !first || i < first->count; ++i) {
      const std::string subject = prefix + "." + std::to_string(i);
      natsMsg* raw = nullptr;
      jsErrCode jerr = jsErrCode(0);
      natsStatus s = NATS_TIMEOUT;
      bool direct = !impl_->no_direct_get.count(stream);
      if (direct) {
        jsDirectGetMsgOptions dg;
        jsDirectGetMsgOptions_Init(&dg);
        dg.LastBySubject = subject.c_str();
        s = js_DirectGetMsg(&raw, js, stream.c_str(), nullptr, &dg);
        if (s == NATS_TIMEOUT || s == NATS_NO_RESPONDERS) {  // unanswered: not allowed on this stream
          impl_->no_direct_get.insert(stream);
          direct = false;
        }
      }
      if (!direct) s = js_GetLastMsg(&raw, js, stream.c_str(), subject.c_str(), nullptr, &jerr);
      MsgPtr msg(raw);
      if (s == NATS_NOT_FOUND && i == 0) return std::nullopt;  // no stream, or nothing retained yet
      if (s == NATS_NOT_FOUND) {
        last_error = "chunk " + subject + " is missing";
        break;
      }
      check_js(s, jerr, "JetStream read of " + subject);
      const char* header = nullptr;
      std::optional<ChunkInfo> info;
      if (natsMsgHeader_Get(msg.get(), kChunkHeader, &header) == NATS_OK && header) info = ChunkInfo::parse(header);
      if (!info || info->index != i)  // not written by a Swarmlens link: bad content, not a dead server
        throw std::runtime_error(subject + ": retained message without a valid chunk header");
      if (!first) first = info;
      if (info->id != first->id) {  // a newer payload is being written over the one we started on
        last_error = "retained chunks of two payloads";
        break;
      }
      auto r = assembler.add(*info, reinterpret_cast<const uint8_t*>(natsMsg_GetData(msg.get())),
                             size_t(natsMsg_GetDataLength(msg.get())));
      if (!r.error.empty()) {
        last_error = r.error;
        break;
      }
      if (r.payload) return std::move(*r.payload);
    }
  }
  throw std::runtime_error("cannot read the payload retained under " + prefix + ": " + last_error);
}

namespace {
// A key-value write refused because the key moved on (JetStream's "wrong last sequence").
bool wrong_last_sequence(natsStatus s) {
  if (s != NATS_ERR) return false;
  const char* text = nats_GetLastError(nullptr);
  if (!text || !std::strstr(text, "wrong last sequence")) return false;
  return true;
}
}  // namespace

void NatsLink::ensure_lease_bucket(const std::string& bucket, int ttl_ms, int replicas) {
  std::lock_guard<std::mutex> g(impl_->js_lock);
  if (impl_->buckets.count(bucket)) return;
  kvStore* kv = nullptr;
  if (js_KeyValue(&kv, impl_->jetstream(), bucket.c_str()) == NATS_OK) {
    impl_->buckets.emplace(bucket, KvPtr(kv));
    return;
  }
  kvConfig cfg;
  check(kvConfig_Init(&cfg), "key-value options");
  cfg.Bucket = bucket.c_str();
  cfg.History = 1;
  cfg.TTL = int64_t(ttl_ms) * 1000000;  // nats.c passes it on as the stream's MaxAge, in nanoseconds
  cfg.StorageType = js_FileStorage;
  cfg.Replicas = replicas;
  check(js_CreateKeyValue(&kv, impl_->jetstream(), &cfg), "create JetStream key-value bucket " + bucket);
  impl_->buckets.emplace(bucket, KvPtr(kv));
}

std::optional<uint64_t> NatsLink::lease_acquire(const std::string& bucket, const std::string& key, const std::string& holder) {
  std::lock_guard<std::mutex> g(impl_->js_lock);
  uint64_t rev = 0;
  const natsStatus s = kvStore_Create(&rev, impl_->bucket(bucket), key.c_str(), holder.data(), int(holder.size()));
  if (s == NATS_OK) return rev;
  if (wrong_last_sequence(s)) return std::nullopt;  // the key is there: another holds it
  check(s, "lease " + bucket + "/" + key);
  return std::nullopt;
}

std::optional<uint64_t> NatsLink::lease_renew(const std::string& bucket, const std::string& key, const std::string& holder,
                                              uint64_t revision) {
  std::lock_guard<std::mutex> g(impl_->js_lock);
  uint64_t rev = 0;
  const natsStatus s = kvStore_Update(&rev, impl_->bucket(bucket), key.c_str(), holder.data(), int(holder.size()), revision);
  if (s == NATS_OK) return rev;
  if (wrong_last_sequence(s)) return std::nullopt;  // the lease expired and was taken
  check(s, "renew lease " + bucket + "/" + key);
  return std::nullopt;
}

std::string NatsLink::lease_holder(const std::string& bucket, const std::string& key) {
  std::lock_guard<std::mutex> g(impl_->js_lock);
  kvEntry* e = nullptr;
  const natsStatus s = kvStore_Get(&e, impl_->bucket(bucket), key.c_str());
  if (s == NATS_NOT_FOUND) return "";
  check(s, "lease " + bucket + "/" + key);
  std::string holder(static_cast<const char*>(kvEntry_Value(e)), size_t(kvEntry_ValueLen(e)));
  kvEntry_Destroy(e);
  return holder;
}

void NatsLink::lease_release(const std::string& bucket, const std::string& key) {
  std::lock_guard<std::mutex> g(impl_->js_lock);
  check(kvStore_Delete(impl_->bucket(bucket), key.c_str()), "release lease " + bucket + "/" + key);
}

void NatsLink::ensure_log_stream(const std::string& stream, const std::string& subject, int replicas) {
  std::lock_guard<std::mutex> g(impl_->js_lock);
  jsCtx* js = impl_->jetstream();
  jsStreamInfo* info = nullptr;
  jsErrCode jerr = jsErrCode(0);
  natsStatus s = js_GetStreamInfo(&info, js, stream.c_str(), nullptr, &jerr);
  if (s == NATS_OK) {
    const bool same = info->Config->SubjectsLen == 1 && subject == info->Config->Subjects[0];
    jsStreamInfo_Destroy(info);
    if (!same) throw NatsError("JetStream stream " + stream + " exists for other subjects than " + subject);
    return;
  }
  if (s != NATS_NOT_FOUND) check_js(s, jerr, "JetStream stream " + stream);
  add_stream(js, stream, subject, replicas, [](jsStreamConfig&) {});  // every message kept
}

uint64_t NatsLink::log_append(const std::string& subject, const std::vector<uint8_t>& payload, uint64_t expect_last) {
  jsCtx* js = nullptr;
  {
    std::lock_guard<std::mutex> g(impl_->js_lock);
    js = impl_->jetstream();
  }
  if (int64_t(payload.size()) > max_payload())
    throw NatsError("JetStream log " + subject + ": " + std::to_string(payload.size()) + " bytes, more than the server's "
                    "max_payload " + std::to_string(max_payload()));
  jsPubOptions po;
  check(jsPubOptions_Init(&po), "JetStream publish options");
  // 0 means "no expectation" to nats.c: an empty stream is expected with ExpectLastSeq unset, which
  // only the first append of a fresh stream relies on.
  po.ExpectLastSeq = expect_last;
  jsPubAck* ack = nullptr;
  jsErrCode jerr = jsErrCode(0);
  const natsStatus s = js_Publish(&ack, js, subject.c_str(), payload.data(), int(payload.size()), &po, &jerr);
  const uint64_t seq = s == NATS_OK && ack ? ack->Sequence : 0;
  jsPubAck_Destroy(ack);
  if (jerr == JSStreamWrongLastSequenceErr)
    throw NatsError("JetStream log " + subject + ": another writer appended since sequence " + std::to_string(expect_last));
  check_js(s, jerr, "JetStream log " + subject);
  return seq;
}

uint64_t NatsLink::log_read(const std::string& stream, const std::string& subject,
                            const std::function<void(uint64_t, std::vector<uint8_t>)>& each) {
  std::lock_guard<std::mutex> g(impl_->js_lock);
  jsCtx* js = impl_->jetstream();
  jsStreamInfo* info = nullptr;
  jsErrCode jerr = jsErrCode(0);
  natsStatus s = js_GetStreamInfo(&info, js, stream.c_str(), nullptr, &jerr);
  if (s == NATS_NOT_FOUND) return 0;
  check_js(s, jerr, "JetStream stream " + stream);
  const uint64_t last = info->State.LastSeq, count = info->State.Msgs;
  jsStreamInfo_Destroy(info);
  if (count == 0) return last;
  jsSubOptions so;
  jsSubOptions_Init(&so);
  so.Stream = stream.c_str();
  so.Ordered = true;
  so.Config.DeliverPolicy = js_DeliverAll;
  natsSubscription* raw = nullptr;
  jerr = jsErrCode(0);
  s = js_SubscribeSync(&raw, js, subject.c_str(), nullptr, &so, &jerr);
  check_js(s, jerr, "read JetStream stream " + stream);
  SubscriptionPtr sub(raw);
  for (;;) {
    natsMsg* m = nullptr;
    check(natsSubscription_NextMsg(&m, sub.get(), impl_->request_timeout_ms), "read JetStream stream " + stream);
    MsgPtr msg(m);
    jsMsgMetaData* meta = nullptr;
    check(natsMsg_GetMetaData(&meta, msg.get()), "JetStream message metadata");
    const uint64_t seq = meta->Sequence.Stream;
    jsMsgMetaData_Destroy(meta);
    const auto* data = reinterpret_cast<const uint8_t*>(natsMsg_GetData(msg.get()));
    each(seq, std::vector<uint8_t>(data, data + natsMsg_GetDataLength(msg.get())));
    if (seq >= last) break;
  }
  return last;
}

std::pair<uint64_t, std::vector<uint8_t>> NatsLink::log_last(const std::string& stream) {
  std::lock_guard<std::mutex> g(impl_->js_lock);
  jsCtx* js = impl_->jetstream();
  jsStreamInfo* info = nullptr;
  jsErrCode jerr = jsErrCode(0);
  natsStatus s = js_GetStreamInfo(&info, js, stream.c_str(), nullptr, &jerr);
  check_js(s, jerr, "JetStream stream " + stream);
  const uint64_t last = info->State.LastSeq, count = info->State.Msgs;
  jsStreamInfo_Destroy(info);
  if (last == 0 || count == 0) return {last, {}};
  natsMsg* raw = nullptr;
  jerr = jsErrCode(0);
  s = js_GetMsg(&raw, js, stream.c_str(), last, nullptr, &jerr);
  MsgPtr msg(raw);
  if (s == NATS_NOT_FOUND) return {last, {}};  // trimmed meanwhile
  check_js(s, jerr, "JetStream read of " + stream);
  const auto* data = reinterpret_cast<const uint8_t*>(natsMsg_GetData(msg.get()));
  return {last, std::vector<uint8_t>(data, data + natsMsg_GetDataLength(msg.get()))};
}

void NatsLink::log_trim(const std::string& stream, uint64_t sequence) {
  std::lock_guard<std::mutex> g(impl_->js_lock);
  jsOptions o;
  check(jsOptions_Init(&o), "JetStream options");
  o.Stream.Purge.Sequence = sequence;  // up to, not including
  jsErrCode jerr = jsErrCode(0);
  const natsStatus s = js_PurgeStream(impl_->jetstream(), stream.c_str(), &o, &jerr);
  check_js(s, jerr, "trim JetStream stream " + stream);
}

bool NatsLink::connected() const { return natsConnection_Status(impl_->conn.get()) == NATS_CONN_STATUS_CONNECTED; }

int64_t NatsLink::max_payload() const { return natsConnection_GetMaxPayload(impl_->conn.get()); }

}  // namespace swarmlens
