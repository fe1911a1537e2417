// The Redis store. Entries live in Redis with Redis TTLs (a hash per entry: its metadata as JSON
// and its vector as raw floats), so replicas share them and a router restart loses nothing.
// Similarity search stays in-process (Debian's Redis 7.0 has no vector search): every replica
// keeps a MemoryCache mirror, kept in step through a Redis stream of operations (add with the
// whole entry, delete, delete a tenant, flush) that each replica reads, from where it last read,
// before every lookup (one round trip on loopback: tens of microseconds). A replica that starts,
// or reconnects after Redis was away, rebuilds its mirror from the entries' keys (SCAN) and
// follows the stream from its end. Redis unreachable: lookups and fills are skipped (the router
// serves without a cache), reconnection is tried on use at most every reconnect_ms.
#include <algorithm>
#include <chrono>
#include <cstring>
#include <mutex>
#include <random>

#include <hiredis/hiredis.h>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "cache/memory.h"

namespace semrouter::cache {
namespace {

using Reply = std::unique_ptr<redisReply, void (*)(void*)>;

Reply wrap(void* r) {
  return Reply(static_cast<redisReply*>(r), freeReplyObject);
}

std::string meta_json(const Entry& e) {
  nlohmann::json j = {{"id", e.id},
                      {"tenant", e.tenant},
                      {"scope", std::to_string(e.scope)},
                      {"exact", std::to_string(e.exact)},
                      {"text", e.text},
                      {"decision", e.decision},
                      {"model", e.model},
                      {"answer", e.answer},
                      {"completion_tokens", e.completion_tokens},
                      {"created_ms", e.created_ms},
                      {"expires_ms", e.expires_ms}};
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::optional<Entry> parse_entry(std::string_view meta, std::string_view vec) {
  try {
    auto j = nlohmann::json::parse(meta);
    Entry e;
    e.id = j.at("id").get<std::string>();
    e.tenant = j.at("tenant").get<std::string>();
    e.scope = std::stoull(j.at("scope").get<std::string>());
    e.exact = std::stoull(j.at("exact").get<std::string>());
    e.text = j.at("text").get<std::string>();
    e.decision = j.at("decision").get<std::string>();
    e.model = j.at("model").get<std::string>();
    e.answer = j.at("answer").get<std::string>();
    e.completion_tokens = j.at("completion_tokens").get<uint32_t>();
    e.created_ms = j.at("created_ms").get<int64_t>();
    e.expires_ms = j.at("expires_ms").get<int64_t>();
    if (vec.size() % sizeof(float) != 0)
      return std::nullopt;
    e.vector.resize(vec.size() / sizeof(float));
    if (!vec.empty())
      std::memcpy(e.vector.data(), vec.data(), vec.size());
    return e;
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

std::string_view str(const redisReply* r) {
  return r && (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS)
             ? std::string_view(r->str, r->len)
             : std::string_view();
}

class RedisCache : public Cache {
public:
  RedisCache(const Options& options, const RedisOptions& redis)
      : mirror_(options), opt_(options), r_(redis) {
    std::random_device rd;
    origin_ = format_id((uint64_t(rd()) << 32) ^ rd());
    mirror_.on_evict([this](const std::string& id) { evicted_.push_back(id); });
  }
  ~RedisCache() override {
    if (ctx_)
      redisFree(ctx_);
  }

  std::string_view backend() const override { return "redis"; }

  Lookup lookup(const Query& q) override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (!ready_locked() || !sync_locked()) {
        Lookup out;
        out.unavailable = true;
        return out;
      }
    }
    return mirror_.lookup(q);
  }

  bool store(Entry e) override {
    std::lock_guard<std::mutex> lock(mu_);
    if (!ready_locked())
      return false;
    if (e.id.empty()) {
      std::random_device rd;
      e.id = format_id((uint64_t(rd()) << 32) ^ rd());
    }
    if (e.created_ms == 0)
      e.created_ms = now_ms();
    const std::string key = r_.prefix + "e:" + e.id;
    const std::string meta = meta_json(e);
    const char* vec = reinterpret_cast<const char*>(e.vector.data());
    const size_t vec_len = e.vector.size() * sizeof(float);
    const std::string maxlen = std::to_string(opt_.max_entries * 2 + 1024);
    redisAppendCommand(ctx_, "HSET %b meta %b vec %b", key.data(), key.size(), meta.data(),
                       meta.size(), vec, vec_len);
    int n = 1;
    if (e.expires_ms > 0) {
      redisAppendCommand(ctx_, "PEXPIREAT %b %lld", key.data(), key.size(),
                         static_cast<long long>(e.expires_ms));
      ++n;
    }
    redisAppendCommand(ctx_, "XADD %b MAXLEN ~ %s * op add origin %b meta %b vec %b", log_.data(),
                       log_.size(), maxlen.c_str(), origin_.data(), origin_.size(), meta.data(),
                       meta.size(), vec, vec_len);
    ++n;
    if (!replies_locked(n))
      return false;
    mirror_.store(std::move(e));
    drop_evicted_locked();
    return true;
  }

  std::optional<Entry> get(std::string_view id) override {
    sync();
    return mirror_.get(id);
  }
  std::pair<std::vector<Summary>, uint64_t> list(std::string_view tenant, uint64_t offset,
                                                 uint64_t limit) override {
    sync();
    return mirror_.list(tenant, offset, limit);
  }
  std::vector<std::pair<Summary, double>> nearest(const std::vector<float>& v, size_t k,
                                                  std::string_view tenant) override {
    sync();
    return mirror_.nearest(v, k, tenant);
  }

  bool erase(std::string_view id) override {
    std::lock_guard<std::mutex> lock(mu_);
    if (!ready_locked())
      return false;
    const std::string key = r_.prefix + "e:" + std::string(id);
    redisAppendCommand(ctx_, "DEL %b", key.data(), key.size());
    redisAppendCommand(ctx_, "XADD %b * op del origin %b id %b", log_.data(), log_.size(),
                       origin_.data(), origin_.size(), id.data(), id.size());
    auto del = command_reply_locked();
    const bool logged = ctx_ && reply_locked();
    if (!del || !logged)
      return false;
    const bool mine = mirror_.erase(id);
    return mine || del->integer > 0;
  }

  uint64_t erase_tenant(std::string_view tenant) override {
    std::lock_guard<std::mutex> lock(mu_);
    if (!ready_locked() || !sync_locked())
      return 0;
    // Every key in Redis, not only the mirror's (it may hold fewer than Redis does).
    std::vector<std::string> doomed;
    const auto keys = scan_keys_locked();
    if (!ctx_)
      return 0;
    for (const auto& key : keys)
      redisAppendCommand(ctx_, "HGET %b meta", key.data(), key.size());
    for (const auto& key : keys) {
      auto r = command_reply_locked();
      if (!ctx_)
        return 0;
      if (!r)
        continue;
      auto j = nlohmann::json::parse(str(r.get()), nullptr, false);
      if (j.is_object() && j.contains("tenant") && j["tenant"].is_string() &&
          j["tenant"].get<std::string>() == tenant)
        doomed.push_back(key);
    }
    if (!unlink_locked(doomed))
      return 0;
    if (!command_locked("XADD %b * op tenant origin %b tenant %b", log_.data(), log_.size(),
                        origin_.data(), origin_.size(), tenant.data(), tenant.size()))
      return 0;
    mirror_.erase_tenant(tenant);
    return doomed.size();
  }

  uint64_t flush() override {
    std::lock_guard<std::mutex> lock(mu_);
    if (!ready_locked())
      return 0;
    const auto keys = scan_keys_locked();
    if (!ctx_ || !unlink_locked(keys))
      return 0;
    if (!command_locked("XADD %b * op flush origin %b", log_.data(), log_.size(), origin_.data(),
                        origin_.size()))
      return 0;
    mirror_.flush();
    return keys.size();
  }

  Stats stats() override {
    Stats s = mirror_.stats();
    std::lock_guard<std::mutex> lock(mu_);
    s.up = ctx_ != nullptr;
    return s;
  }

  void set_options(const Options& o) override {
    std::lock_guard<std::mutex> lock(mu_);
    opt_ = o;
    mirror_.set_options(o);
    if (ctx_)
      drop_evicted_locked();
    else
      evicted_.clear(); // Redis keeps them until their TTL
  }

private:
  void sync() {
    std::lock_guard<std::mutex> lock(mu_);
    if (ready_locked())
      sync_locked();
  }

  // One command. Null on failure: a connection error frees the connection (Redis is down); an
  // error reply (-OOM, -READONLY, ...) is logged and the connection kept.
  template <typename... A> Reply command_locked(const char* fmt, A... args) {
    if (!ctx_)
      return Reply(nullptr, freeReplyObject);
    Reply r = wrap(redisCommand(ctx_, fmt, args...));
    if (!r) {
      fail_locked(ctx_->errstr);
      return Reply(nullptr, freeReplyObject);
    }
    if (r->type == REDIS_REPLY_ERROR) {
      error_reply(r.get());
      return Reply(nullptr, freeReplyObject);
    }
    return r;
  }

  // The next reply of a pipeline; null as command_locked.
  Reply command_reply_locked() {
    if (!ctx_)
      return Reply(nullptr, freeReplyObject);
    void* raw = nullptr;
    if (redisGetReply(ctx_, &raw) != REDIS_OK) {
      fail_locked(ctx_->errstr);
      return Reply(nullptr, freeReplyObject);
    }
    Reply r = wrap(raw);
    if (r->type == REDIS_REPLY_ERROR) {
      error_reply(r.get());
      return Reply(nullptr, freeReplyObject);
    }
    return r;
  }

  bool reply_locked() { return command_reply_locked() != nullptr; }

  // Reads all n replies of a pipeline (so the connection stays in step); true if all succeeded.
  bool replies_locked(int n) {
    bool ok = true;
    for (int i = 0; i < n && ctx_; ++i)
      ok = reply_locked() && ok;
    return ok && ctx_;
  }

  void error_reply(const redisReply* r) {
    const auto now = std::chrono::steady_clock::now();
    if (now - last_error_log_ > std::chrono::seconds(10)) {
      spdlog::warn("cache: redis {}:{} refused a command: {}", r_.host, r_.port,
                   std::string(r->str, r->len));
      last_error_log_ = now;
    }
  }

  // UNLINKs keys, 512 per command.
  bool unlink_locked(const std::vector<std::string>& keys) {
    for (size_t i = 0; i < keys.size(); i += 512) {
      std::vector<const char*> argv{"UNLINK"};
      std::vector<size_t> lens{6};
      for (size_t k = i; k < keys.size() && k < i + 512; ++k) {
        argv.push_back(keys[k].data());
        lens.push_back(keys[k].size());
      }
      Reply r = wrap(redisCommandArgv(ctx_, int(argv.size()), argv.data(), lens.data()));
      if (!r) {
        fail_locked(ctx_->errstr);
        return false;
      }
    }
    return true;
  }

  void fail_locked(const std::string& why) {
    spdlog::warn("cache: redis {}:{} failed ({}); serving without the cache until it is back",
                 r_.host, r_.port, why);
    if (ctx_)
      redisFree(ctx_);
    ctx_ = nullptr;
    was_down_ = true;
    last_attempt_ = std::chrono::steady_clock::now();
  }

  // Connected, or connected now (and the mirror rebuilt); false while Redis is unreachable.
  bool ready_locked() {
    if (ctx_)
      return true;
    const auto now = std::chrono::steady_clock::now();
    if (attempted_ && now - last_attempt_ < std::chrono::milliseconds(r_.reconnect_ms))
      return false;
    attempted_ = true;
    last_attempt_ = now;
    timeval tv{static_cast<time_t>(r_.timeout_ms / 1000),
               static_cast<suseconds_t>((r_.timeout_ms % 1000) * 1000)};
    redisContext* c = redisConnectWithTimeout(r_.host.c_str(), r_.port, tv);
    if (!c || c->err) {
      if (!was_down_)
        spdlog::warn("cache: redis {}:{} unreachable ({}); serving without the cache, retrying",
                     r_.host, r_.port, c ? c->errstr : "out of memory");
      was_down_ = true;
      if (c)
        redisFree(c);
      return false;
    }
    redisSetTimeout(c, tv);
    ctx_ = c;
    if (!r_.password.empty() && !command_locked("AUTH %s", r_.password.c_str()))
      return false;
    if (r_.db != 0 && !command_locked("SELECT %u", r_.db))
      return false;
    if (!resync_locked())
      return false;
    spdlog::info("cache: redis {}:{} connected; {} entries loaded", r_.host, r_.port,
                 mirror_.stats().entries);
    was_down_ = false;
    return true;
  }

  std::vector<std::string> scan_keys_locked() {
    std::vector<std::string> keys;
    std::string cursor = "0";
    const std::string pattern = r_.prefix + "e:*";
    do {
      auto r = command_locked("SCAN %s MATCH %b COUNT 1000", cursor.c_str(), pattern.data(),
                              pattern.size());
      if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != 2)
        return keys;
      cursor = std::string(str(r->element[0]));
      for (size_t i = 0; i < r->element[1]->elements; ++i)
        keys.emplace_back(str(r->element[1]->element[i]));
    } while (cursor != "0");
    return keys;
  }

  // The mirror from scratch: follow the stream from its current end, then load every entry.
  bool resync_locked() {
    auto last = command_locked("XREVRANGE %b + - COUNT 1", log_.data(), log_.size());
    if (!last)
      return false;
    last_id_ = "0-0";
    if (last->type == REDIS_REPLY_ARRAY && last->elements == 1)
      last_id_ = std::string(str(last->element[0]->element[0]));
    mirror_.flush();
    auto keys = scan_keys_locked();
    if (!ctx_)
      return false;
    for (const auto& key : keys)
      redisAppendCommand(ctx_, "HMGET %b meta vec", key.data(), key.size());
    std::vector<Entry> loaded;
    for (size_t i = 0; i < keys.size(); ++i) {
      auto r = command_reply_locked();
      if (!ctx_)
        return false;
      if (r && r->type == REDIS_REPLY_ARRAY && r->elements == 2)
        if (auto e = parse_entry(str(r->element[0]), str(r->element[1])))
          loaded.push_back(std::move(*e));
    }
    // Oldest first: of two answers to the same exact key, the newer one stays.
    std::sort(loaded.begin(), loaded.end(),
              [](const Entry& a, const Entry& b) { return a.created_ms < b.created_ms; });
    for (auto& e : loaded)
      mirror_.store(std::move(e));
    evicted_.clear(); // a smaller bound than the data: the mirror keeps what fits
    return true;
  }

  // Applies the operations other replicas logged since the last read. Once a second it also checks
  // that the stream still holds that point: a replica idle for longer than the stream's length
  // (MAXLEN) would miss operations, so it rebuilds its mirror instead.
  bool sync_locked() {
    const auto now = std::chrono::steady_clock::now();
    if (now - last_gap_check_ > std::chrono::seconds(1)) {
      last_gap_check_ = now;
      auto first = command_locked("XRANGE %b - + COUNT 1", log_.data(), log_.size());
      if (!first)
        return false;
      if (first->type == REDIS_REPLY_ARRAY && first->elements == 1 && last_id_ != "0-0" &&
          stream_id_less(last_id_, std::string(str(first->element[0]->element[0]))))
        return resync_locked();
    }
    for (;;) {
      auto r = command_locked("XREAD COUNT 512 STREAMS %b %s", log_.data(), log_.size(),
                              last_id_.c_str());
      if (!r)
        return false;
      if (r->type != REDIS_REPLY_ARRAY || r->elements == 0)
        return true;
      const redisReply* items = r->element[0]->element[1];
      for (size_t i = 0; i < items->elements; ++i) {
        const redisReply* item = items->element[i];
        last_id_ = std::string(str(item->element[0]));
        const redisReply* f = item->element[1];
        std::string_view op, origin, meta, vec, id, tenant;
        for (size_t k = 0; k + 1 < f->elements; k += 2) {
          std::string_view name = str(f->element[k]), value = str(f->element[k + 1]);
          if (name == "op")
            op = value;
          else if (name == "origin")
            origin = value;
          else if (name == "meta")
            meta = value;
          else if (name == "vec")
            vec = value;
          else if (name == "id")
            id = value;
          else if (name == "tenant")
            tenant = value;
        }
        if (origin == origin_)
          continue; // ours: already applied
        if (op == "add") {
          if (auto e = parse_entry(meta, vec))
            if (e->expires_ms == 0 || e->expires_ms > now_ms())
              mirror_.store(std::move(*e));
        } else if (op == "del") {
          mirror_.erase(id);
        } else if (op == "tenant") {
          mirror_.erase_tenant(tenant);
        } else if (op == "flush") {
          mirror_.flush();
        }
      }
      evicted_.clear(); // another replica's entries evicted here: each replica bounds itself
      if (items->elements < 512)
        return true;
    }
  }

  // Entries the mirror evicted for capacity (or replaced) leave Redis too.
  void drop_evicted_locked() {
    auto ids = std::move(evicted_);
    evicted_.clear();
    std::vector<std::string> keys;
    for (const auto& id : ids)
      keys.push_back(r_.prefix + "e:" + id);
    if (ctx_)
      unlink_locked(keys);
  }

  // Stream ids "ms-seq", compared as numbers.
  static bool stream_id_less(const std::string& a, const std::string& b) {
    auto parse = [](const std::string& s) {
      const auto dash = s.find('-');
      return std::pair<unsigned long long, unsigned long long>(
          std::strtoull(s.c_str(), nullptr, 10),
          dash == std::string::npos ? 0 : std::strtoull(s.c_str() + dash + 1, nullptr, 10));
    };
    return parse(a) < parse(b);
  }

  MemoryCache mirror_;
  Options opt_;
  RedisOptions r_;
  std::string log_ = r_.prefix + "log";
  std::string origin_;
  std::mutex mu_;
  redisContext* ctx_ = nullptr;
  bool attempted_ = false;
  bool was_down_ = false;
  std::chrono::steady_clock::time_point last_attempt_{};
  std::chrono::steady_clock::time_point last_error_log_{};
  std::chrono::steady_clock::time_point last_gap_check_{};
  std::string last_id_ = "0-0";
  std::vector<std::string> evicted_;
};

} // namespace

std::unique_ptr<Cache> make_redis_cache(const Options& options, const RedisOptions& redis) {
  return std::make_unique<RedisCache>(options, redis);
}

} // namespace semrouter::cache
