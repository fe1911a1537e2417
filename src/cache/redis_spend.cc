#include "cache/redis_spend.h"

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include <fmt/format.h>
#include <hiredis/hiredis.h>

namespace semrouter::cache {
namespace {

using core::ErrorCode;

// KEYS[1]: the batch's id key; KEYS[2..]: the totals. ARGV[1]: the id key's lifetime (s); then,
// per total, its increment and its expiry (Unix seconds). The id key goes first, with NX: a batch
// whose earlier send reached Redis (its reply lost) changes nothing the second time.
constexpr const char* kApplyBatch = R"lua(
if redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[1]) then
  for i = 2, #KEYS do
    redis.call('INCRBYFLOAT', KEYS[i], ARGV[2 * i - 2])
    redis.call('EXPIREAT', KEYS[i], ARGV[2 * i - 1])
  end
end
return 0
)lua";

// Long enough to cover any resend of a batch (resends happen every flush while Redis is away; a
// batch never reached Redis if its id key is not there).
constexpr int64_t kBatchIdLifetimeS = 86400;

using Reply = std::unique_ptr<redisReply, void (*)(void*)>;

Reply wrap(void* r) {
  return Reply(static_cast<redisReply*>(r), freeReplyObject);
}

class RedisSpendStore : public auth::SpendStore {
public:
  explicit RedisSpendStore(const config::SpendRedisConfig& cfg) : cfg_(cfg) {}
  ~RedisSpendStore() override { disconnect(); }
  RedisSpendStore(const RedisSpendStore&) = delete;
  RedisSpendStore& operator=(const RedisSpendStore&) = delete;

  core::StatusOr<std::vector<double>> sync(const auth::SpendBatch& batch,
                                           const std::vector<std::string>& read) override {
    if (auto st = connect(); !st)
      return tl::unexpected(st.error());
    int pending = 0;
    if (!batch.increments.empty()) {
      std::vector<std::string> args{"EVAL", kApplyBatch,
                                    std::to_string(batch.increments.size() + 1),
                                    cfg_.prefix + "batch:" + batch.id};
      for (const auto& inc : batch.increments)
        args.push_back(cfg_.prefix + inc.name);
      args.push_back(std::to_string(kBatchIdLifetimeS));
      for (const auto& inc : batch.increments) {
        args.push_back(fmt::format("{:.17g}", inc.usd));
        args.push_back(std::to_string(inc.expire_at_unix_s));
      }
      append(args);
      ++pending;
    }
    if (!read.empty()) {
      std::vector<std::string> args{"MGET"};
      for (const auto& name : read)
        args.push_back(cfg_.prefix + name);
      append(args);
      ++pending;
    }
    // Every reply is read, so the connection stays in step even when one of them is an error.
    std::vector<Reply> replies;
    for (int i = 0; i < pending; ++i) {
      void* raw = nullptr;
      if (redisGetReply(ctx_, &raw) != REDIS_OK)
        return fail(io_error());
      replies.push_back(wrap(raw));
    }
    for (const Reply& r : replies)
      if (r->type == REDIS_REPLY_ERROR)
        return core::make_error(ErrorCode::Internal,
                                fmt::format("redis {}:{} refused a command: {}", cfg_.host,
                                            cfg_.port, std::string_view(r->str, r->len)));
    std::vector<double> totals(read.size(), 0.0);
    if (!read.empty()) {
      const redisReply* r = replies.back().get();
      if (r->type != REDIS_REPLY_ARRAY || r->elements != read.size())
        return core::make_error(ErrorCode::Internal, "redis: MGET answered an unexpected shape");
      for (size_t i = 0; i < read.size(); ++i) {
        const redisReply* e = r->element[i];
        if (e->type != REDIS_REPLY_STRING)
          continue; // nil: nothing spent yet
        const std::string text(e->str, e->len);
        char* end = nullptr;
        const double v = std::strtod(text.c_str(), &end);
        if (end != text.c_str() && *end == '\0' && v >= 0)
          totals[i] = v;
      }
    }
    return totals;
  }

private:
  void append(const std::vector<std::string>& args) {
    std::vector<const char*> argv;
    std::vector<size_t> lens;
    for (const auto& a : args) {
      argv.push_back(a.data());
      lens.push_back(a.size());
    }
    redisAppendCommandArgv(ctx_, static_cast<int>(argv.size()), argv.data(), lens.data());
  }

  // What went wrong with the connection; a read that hit timeout_ms says so (hiredis reports it
  // as EAGAIN).
  std::string io_error() const {
    if (ctx_->err == REDIS_ERR_IO && std::string_view(ctx_->errstr) == std::strerror(EAGAIN))
      return fmt::format("no answer within {} ms", cfg_.timeout_ms);
    return ctx_->errstr;
  }

  core::Status connect() {
    if (ctx_)
      return {};
    const auto now = std::chrono::steady_clock::now();
    if (attempted_ && now - last_attempt_ < std::chrono::milliseconds(cfg_.reconnect_ms))
      return core::make_error(
          ErrorCode::Unavailable,
          fmt::format("redis {}:{}: waiting to reconnect ({})", cfg_.host, cfg_.port, last_error_));
    attempted_ = true;
    last_attempt_ = now;
    const timeval tv{static_cast<time_t>(cfg_.timeout_ms / 1000),
                     static_cast<suseconds_t>((cfg_.timeout_ms % 1000) * 1000)};
    redisContext* c = redisConnectWithTimeout(cfg_.host.c_str(), cfg_.port, tv);
    if (!c || c->err) {
      last_error_ = c ? c->errstr : "out of memory";
      if (c)
        redisFree(c);
      return core::make_error(
          ErrorCode::Unavailable,
          fmt::format("redis {}:{} unreachable: {}", cfg_.host, cfg_.port, last_error_));
    }
    redisSetTimeout(c, tv);
    ctx_ = c;
    if (!cfg_.password.empty())
      if (auto st = simple_command({"AUTH", cfg_.password}); !st)
        return st;
    if (cfg_.db != 0)
      if (auto st = simple_command({"SELECT", std::to_string(cfg_.db)}); !st)
        return st;
    return {};
  }

  // A command whose answer only says yes or no; a refusal drops the connection (it cannot be
  // used without it).
  core::Status simple_command(const std::vector<std::string>& args) {
    append(args);
    void* raw = nullptr;
    if (redisGetReply(ctx_, &raw) != REDIS_OK)
      return fail(io_error());
    Reply r = wrap(raw);
    if (r->type == REDIS_REPLY_ERROR) {
      const std::string why(r->str, r->len);
      // Never the password: only the command's name.
      return fail(args[0] + " refused: " + why);
    }
    return {};
  }

  tl::unexpected<core::Error> fail(const std::string& why) {
    last_error_ = why;
    disconnect();
    last_attempt_ = std::chrono::steady_clock::now();
    return core::make_error(ErrorCode::Unavailable,
                            fmt::format("redis {}:{} failed: {}", cfg_.host, cfg_.port, why));
  }

  void disconnect() {
    if (ctx_)
      redisFree(ctx_);
    ctx_ = nullptr;
  }

  config::SpendRedisConfig cfg_;
  redisContext* ctx_ = nullptr;
  bool attempted_ = false;
  std::chrono::steady_clock::time_point last_attempt_{};
  std::string last_error_;
};

} // namespace

std::unique_ptr<auth::SpendStore> make_redis_spend_store(const config::SpendRedisConfig& cfg) {
  return std::make_unique<RedisSpendStore>(cfg);
}

} // namespace semrouter::cache
