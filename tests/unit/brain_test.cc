// Signals, decisions and plugins of the routing brain that YAML cases cannot express: the
// session store's bounds, the confidence strategy, history windows, token estimates, the
// inference pool running transformer-backed signals, and the classify API.
#include <chrono>
#include <fstream>
#include <memory>
#include <optional>
#include <string>
#include <thread>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "config/config.h"
#include "core/shard.h"
#include "models/inference_pool.h"
#include "models/quality_router.h"
#include "models/word_vectors.h"
#include "pipeline/cost_quality.h"
#include "pipeline/pipeline.h"
#include "pipeline/request_signals.h"
#include "pipeline/sessions.h"
#include "routing/decision_engine.h"
#include "signals/pii.h"

namespace semrouter {
namespace {

std::string src(const std::string& rel) {
  return std::string(SEMROUTER_SOURCE_DIR) + "/" + rel;
}

std::shared_ptr<const config::Config> parse(const std::string& yaml) {
  auto c = config::parse_config(yaml);
  EXPECT_TRUE(c.has_value()) << c.error().message;
  return c ? *c : nullptr;
}

TEST(Sessions, ExpireAfterTheirTtlAndEvictTheLeastRecentlyUsed) {
  using namespace std::chrono;
  pipeline::SessionStore s;
  auto t0 = pipeline::SessionStore::Clock::now();
  s.put("a", {"math", "m1", 100}, 2, t0);
  s.put("b", {"code", "m2", 200}, 2, t0);
  ASSERT_TRUE(s.get("a", seconds(10), t0 + seconds(5))); // refreshes a: b is now the oldest
  s.put("c", {"law", "m3", 100}, 2, t0 + seconds(6));
  EXPECT_EQ(s.size(), 2u);
  EXPECT_FALSE(s.get("b", seconds(10), t0 + seconds(6))) << "b was least recently used";
  auto a = s.get("a", seconds(10), t0 + seconds(7));
  ASSERT_TRUE(a);
  EXPECT_EQ(a->model, "m1");
  EXPECT_EQ(a->priority, 100);
  // Ten seconds of silence end a session.
  EXPECT_FALSE(s.get("c", seconds(10), t0 + seconds(17)));
  EXPECT_EQ(s.size(), 1u);
  // put() on an existing id replaces its entry without growing the store.
  s.put("a", {"code", "m2", 200}, 2, t0 + seconds(8));
  EXPECT_EQ(s.get("a", seconds(10), t0 + seconds(9))->decision, "code");
  EXPECT_EQ(s.size(), 1u);
}

TEST(Decisions, ConfidenceStrategyPicksTheMostConfidentMatch) {
  const std::string base = R"(
backends: [{name: b, url: "http://127.0.0.1:9/v1"}]
models: [{name: m, backends: [b]}]
signals: {keywords: [{name: x, keywords: [x]}, {name: y, keywords: [y]}]}
decisions:
  - {name: high, priority: 10, rules: {keyword: x}, models: [m]}
  - {name: sure, priority: 5, rules: {keyword: y}, models: [m]}
  - {name: also_sure, priority: 5, rules: {keyword: y}, models: [m]}
)";
  signals::SignalResults r;
  r.set("keyword", "x", {true, 0.6, 0, {}});
  r.set("keyword", "y", {true, 0.9, 0, {}});
  auto by_priority = parse(base);
  EXPECT_EQ(routing::DecisionEngine(*by_priority).decide(r).name, "high");
  auto by_confidence = parse(base + "routing: {strategy: confidence}\n");
  auto d = routing::DecisionEngine(*by_confidence).decide(r);
  EXPECT_EQ(d.name, "sure") << "ties keep the earlier (higher or same priority) decision";
  EXPECT_DOUBLE_EQ(d.confidence, 0.9);
  EXPECT_EQ(d.priority, 5);
  // Nothing matches: the fallback ranks below every decision.
  signals::SignalResults none;
  auto f = routing::DecisionEngine(*by_confidence).decide(none);
  EXPECT_TRUE(f.is_default);
  EXPECT_EQ(f.decision, nullptr);
  EXPECT_EQ(f.priority, INT32_MIN);
}

// Short turns that lean on the conversation are read with the turn they follow; new questions,
// however short, are not.
TEST(Signals, FollowUps) {
  for (const char* t : {"yes, do it", "and for the second case?", "commit it", "what about n=5?",
                        "go on", "ok now make it faster", "same for 2023", "why?", "Why not?",
                        "try the other one", "more examples please"})
    EXPECT_TRUE(pipeline::is_follow_up(t, 8)) << t;
  for (const char* t :
       {"Good night!", "thanks! unrelated: what's the capital of Australia?", "now tell me a story",
        "What is the capital of France?", "Why is the sky blue?", "hello", "",
        "and here is a much longer message that explains a whole new problem in "
        "detail"})
    EXPECT_FALSE(pipeline::is_follow_up(t, 8)) << t;

  std::string body = R"({"model":"auto","messages":[
    {"role":"user","content":"Prove that there are infinitely many primes."},
    {"role":"assistant","content":"Suppose there were finitely many..."},
    {"role":"user","content":"ok, and the twin primes?"},
    {"role":"assistant","content":"That is open."},
    {"role":"user","content":"why?"}]})";
  auto view = openai::parse_request(body, openai::RequestKind::ChatCompletions);
  ASSERT_TRUE(view);
  std::string storage;
  config::HistoryConfig h;
  // Routed on the signals of the turn it leans on: past the earlier follow-up, to the proof.
  EXPECT_EQ(pipeline::signal_text(*view, h, storage),
            "Prove that there are infinitely many primes.");
  h.follow_ups = false;
  EXPECT_EQ(pipeline::signal_text(*view, h, storage), "why?");
  // A follow-up as the first turn has nothing to lean on.
  std::string one = R"({"model":"auto","messages":[{"role":"user","content":"yes, do it"}]})";
  auto v1 = openai::parse_request(one, openai::RequestKind::ChatCompletions);
  ASSERT_TRUE(v1);
  h.follow_ups = true;
  EXPECT_EQ(pipeline::signal_text(*v1, h, storage), "yes, do it");
}

TEST(Signals, HistoryWindowAndTokenEstimate) {
  std::string body = R"({"model":"auto","messages":[
    {"role":"system","content":"sys"},
    {"role":"user","content":"first"},
    {"role":"assistant","content":"reply"},
    {"role":"user","content":"second"},
    {"role":"user","content":"third"}]})";
  auto view = openai::parse_request(body, openai::RequestKind::ChatCompletions);
  ASSERT_TRUE(view);
  std::string storage;
  config::HistoryConfig h;
  h.follow_ups = false; // "third" would read as pointing back (see FollowUps below)
  EXPECT_EQ(pipeline::signal_text(*view, h, storage), "third");
  h.user_turns = 2;
  EXPECT_EQ(pipeline::signal_text(*view, h, storage), "second\n\nthird");
  h.user_turns = 0;
  EXPECT_EQ(pipeline::signal_text(*view, h, storage), "first\n\nsecond\n\nthird");
  h.include_assistant = true;
  h.include_system = true;
  EXPECT_EQ(pipeline::signal_text(*view, h, storage), "sys\n\nfirst\n\nreply\n\nsecond\n\nthird");
  h.user_turns = 3;
  h.include_system = false;
  EXPECT_EQ(pipeline::signal_text(*view, h, storage), "first\n\nreply\n\nsecond\n\nthird");

  EXPECT_EQ(pipeline::estimate_tokens(""), 0u);
  EXPECT_EQ(pipeline::estimate_tokens("abcd"), 1u);
  EXPECT_EQ(pipeline::estimate_tokens("abcde"), 2u);
  EXPECT_EQ(pipeline::estimate_tokens("\xe4\xbd\xa0\xe5\xa5\xbd"), 2u); // two Han characters
  EXPECT_EQ(pipeline::estimate_tokens("caf\xc3\xa9"), 2u);              // 5 bytes, not CJK
  EXPECT_EQ(pipeline::estimate_request_tokens(*view), 4u * 5 + 1 + 2 + 2 + 2 + 2);
}

TEST(Signals, ConfigAndRecognisersAgreeOnPiiTypes) {
  EXPECT_EQ(config::pattern_pii_types(), signals::pattern_pii_types());
}

// Transformer-backed tasks run as pool jobs beside the inline ones; the answers are the same as
// running everything on the calling thread.
TEST(Signals, TransformerTasksOnThePoolMatchInline) {
  // The BERT fixtures back domain, embeddings and pii (the jailbreak model stays the default).
  const std::string base =
      R"(
backends: [{name: b, url: "http://127.0.0.1:9/v1"}]
models: [{name: m, backends: [b]}, {name: n, backends: [b]}]
classifiers:
  domain: {type: transformer, path: )" +
      src("tests/fixtures/encoders/bert-seqcls") + R"(, precision: f32}
  embeddings: {type: transformer, path: )" +
      src("tests/fixtures/encoders/bert-embed") + R"(, precision: f32}
  pii: {type: transformer, path: )" +
      src("tests/fixtures/encoders/bert-tokcls") + R"(, precision: f32}
signals:
  embeddings: [{name: greet, phrases: [hello there, good morning], threshold: -1}]
  pii: [{name: any, min_score: 0}]
)";
  auto cfg = parse(base + R"(
decisions:
  - {name: d, rules: {and: [{embedding: greet}, {not: {domain: astrology_is_not_a_label}}]}, models: [m]}
  - {name: e, rules: {or: [{domain: math}, {jailbreak: jailbreak}, {pii: any}]}, models: [n]}
)");
  ASSERT_TRUE(cfg);
  auto snap = pipeline::build_snapshot(cfg, 1, /*load_models=*/false);
  ASSERT_TRUE(snap); // without models, unknown domain names are not checked
  auto loaded = pipeline::build_snapshot(cfg, 1, true);
  ASSERT_FALSE(loaded) << "a domain the classifier does not know is refused";
  EXPECT_NE(loaded.error().message.find("astrology_is_not_a_label"), std::string::npos);

  auto cfg2 = parse(base + R"(
decisions:
  - {name: d, rules: {and: [{embedding: greet}, {not: {domain: other}}, {pii: any}]}, models: [m]}
  - {name: e, rules: {or: [{domain: math}, {jailbreak: jailbreak}]}, models: [n]}
)");
  auto s = pipeline::build_snapshot(cfg2, 1, true);
  ASSERT_TRUE(s) << s.error().message;
  EXPECT_TRUE((*s)->models->is_transformer("domain"));
  EXPECT_FALSE((*s)->models->is_transformer("jailbreak"));
  models::InferencePool pool({2, 1, 16});
  const std::string text = "Hello there, mail me at a@b.co about the integral.";
  pipeline::RequestFacts facts;
  facts.text = text;
  signals::SignalResults inline_r, pooled_r;
  pipeline::SignalDetails inline_d, pooled_d;
  pipeline::compute_signals(**s, facts, (*s)->referenced, nullptr, inline_r, &inline_d);
  pipeline::compute_signals(**s, facts, (*s)->referenced, &pool, pooled_r, &pooled_d);
  ASSERT_EQ(inline_r.all().size(), pooled_r.all().size());
  for (const auto& [key, r] : inline_r.all()) {
    SCOPED_TRACE(key);
    const signals::SignalResult* found = pooled_r.find(key);
    ASSERT_NE(found, nullptr);
    const auto& p = *found;
    EXPECT_EQ(r.matched, p.matched);
    EXPECT_NEAR(r.confidence, p.confidence, 1e-6);
    EXPECT_EQ(r.evidence, p.evidence);
  }
  // Every referenced signal was computed, by the right model.
  for (const char* key :
       {"embedding:greet", "domain:other", "domain:math", "jailbreak:jailbreak", "pii:any"})
    EXPECT_NE(inline_r.find(key), nullptr) << key;
  EXPECT_TRUE(inline_d.analysis.has_domain);
  EXPECT_EQ(inline_d.analysis.embedding.size(), 64u); // the BERT fixture's width, not GloVe's
  // The pattern recogniser's e-mail is among the PII, merged with the model's entities.
  bool email = false;
  for (const auto& e : pooled_d.pii)
    email = email || (e.type == "email" && text.substr(e.begin, e.end - e.begin) == "a@b.co");
  EXPECT_TRUE(email);
}

TEST(Classify, ReportsEverySignalForAMessagesArray) {
  auto cfg = parse(R"(
backends: [{name: b, url: "http://127.0.0.1:9/v1"}]
models: [{name: m, backends: [b]}]
routing: {history: {user_turns: 2}}
signals:
  keywords: [{name: kw, keywords: [integral]}]
  embeddings: [{name: calc, phrases: [compute the integral of a function]}]
  context_length: [{name: short, max_tokens: 100}]
  pii: [{name: mail, types: [email]}]
)");
  auto s = pipeline::build_snapshot(cfg, 1, true);
  ASSERT_TRUE(s) << s.error().message;
  auto [status, body] = pipeline::classify(
      **s, R"({"messages":[{"role":"user","content":"What is the integral of x?"},)"
           R"({"role":"assistant","content":"x^2/2"},)"
           R"({"role":"user","content":"Mail it to me@example.com"}]})");
  ASSERT_EQ(status, 200) << body;
  auto j = nlohmann::json::parse(body);
  // Two user turns are read, as routing.history says.
  EXPECT_TRUE(j["rules"]["keyword:kw"]["matched"].get<bool>()) << body;
  EXPECT_TRUE(j["rules"]["pii:mail"]["matched"].get<bool>());
  EXPECT_TRUE(j["rules"]["context_length:short"]["matched"].get<bool>());
  EXPECT_TRUE(j["rules"].contains("embedding:calc"));
  EXPECT_EQ(j["signals"]["pii"]["entities"][0]["text"], "me@example.com");
  EXPECT_EQ(j["signals"]["pii"]["entities"][0]["type"], "email");
  for (const char* k : {"domain", "complexity", "jailbreak", "language", "embedding"})
    EXPECT_TRUE(j["signals"].contains(k)) << k;
  EXPECT_GT(j["tokens_estimate"].get<int>(), 5);
  // Bad input is an OpenAI-shaped 400.
  auto [bad_status, bad_body] = pipeline::classify(**s, R"({"messages":"nope"})");
  EXPECT_EQ(bad_status, 400);
  EXPECT_NE(bad_body.find("\"invalid_request_error\""), std::string::npos) << bad_body;
}

// Holding a target share of strong calls online: after warm-up the threshold is the window's
// (1 − share) quantile, and the realised share follows.
TEST(CostQuality, OnlineThresholdHoldsTheTargetShare) {
  config::SelectionConfig sel;
  sel.enabled = true;
  sel.threshold = 0.9; // the offline threshold, used until the window has 50 scores
  sel.target_strong_share = 0.3;
  sel.window = 500;
  pipeline::SelectionState st;
  size_t strong = 0, n = 0;
  for (int i = 0; i < 2000; ++i) {
    double score = double((i * 7919) % 1000) / 1000.0; // every value of [0, 1) in a scrambled order
    double t = st.threshold("d", sel, score);
    if (i < 49) {
      EXPECT_DOUBLE_EQ(t, 0.9);
    }
    bool go = score >= t;
    double share = st.record_choice("d", sel, go);
    if (i >= 1000) {
      strong += go, ++n;
      EXPECT_NEAR(share, 0.3, 0.06) << i;
    }
  }
  EXPECT_NEAR(double(strong) / double(n), 0.3, 0.03);
}

// Load pressure starts above the limit and ends only below (1 − hysteresis) of it; old
// time-to-first-token samples do not count.
TEST(CostQuality, LoadPressureHasHysteresis) {
  config::SelectionConfig sel;
  sel.load.max_inflight = 4;
  sel.load.hysteresis = 0.5;
  pipeline::LoadTracker load;
  pipeline::SelectionState st;
  auto pressure = [&] { return st.pressure("d", sel, load, "big"); };
  for (int i = 0; i < 4; ++i)
    load.start("big");
  EXPECT_FALSE(pressure()) << "4 in flight is at the limit, not above";
  load.start("big");
  EXPECT_TRUE(pressure());
  load.finish("big"); // 4
  EXPECT_TRUE(pressure()) << "still above 4 × (1 − 0.5)";
  load.finish("big");
  EXPECT_TRUE(pressure()) << "3 is still above 2";
  load.finish("big"); // 2
  EXPECT_FALSE(pressure());
  load.start("big"); // 3: below the limit, stays off
  EXPECT_FALSE(pressure());
  EXPECT_EQ(load.inflight("big"), 3);
  EXPECT_EQ(load.inflight("other"), 0);

  config::SelectionConfig slo;
  slo.load.ttft_p95_ms = 500;
  for (int i = 0; i < 9; ++i)
    load.record_ttft("slow", 2.0);
  EXPECT_FALSE(load.ttft_p95("slow")) << "fewer than 10 samples";
  load.record_ttft("slow", 2.0);
  ASSERT_TRUE(load.ttft_p95("slow"));
  EXPECT_DOUBLE_EQ(*load.ttft_p95("slow"), 2.0);
  EXPECT_TRUE(st.pressure("e", slo, load, "slow"));
}

// A request keeps its model's handle: the handle and the name reach the same counts; the
// time-to-first-token window keeps the last 200 samples; two trackers do not share a thread's
// cached lookups.
TEST(CostQuality, LoadTrackerHandlesAndWindow) {
  auto a = std::make_unique<pipeline::LoadTracker>();
  pipeline::LoadTracker::Model& big = a->model("big");
  EXPECT_EQ(&big, &a->model("big"));
  EXPECT_NE(&big, &a->model("small"));
  big.start();
  big.start();
  a->start("big");
  big.finish();
  EXPECT_EQ(a->inflight("big"), 2);
  EXPECT_EQ(a->inflight("small"), 0);

  for (int i = 0; i < 100; ++i)
    big.record_ttft(10.0); // pushed out of the window by the 200 below
  for (int i = 0; i < 200; ++i)
    big.record_ttft(i < 190 ? 0.25 : 1.0);
  ASSERT_TRUE(a->ttft_p95("big"));
  EXPECT_DOUBLE_EQ(*a->ttft_p95("big"), 1.0) << "the 95th percentile of 190 × 0.25 and 10 × 1.0";
  for (int i = 0; i < 190; ++i)
    big.record_ttft(0.25);
  EXPECT_DOUBLE_EQ(*a->ttft_p95("big"), 1.0) << "the ten 1.0 samples are all still in the window";
  big.record_ttft(0.25);
  EXPECT_DOUBLE_EQ(*a->ttft_p95("big"), 0.25);

  // A new tracker starts empty, whatever this thread cached, even at the old one's address: the
  // cache is keyed by an id, not `this`.
  a.reset();
  std::optional<pipeline::LoadTracker> slot;
  slot.emplace();
  slot->model("big").start();
  const void* address = &*slot;
  slot.reset();
  slot.emplace();
  ASSERT_EQ(&*slot, address);
  EXPECT_EQ(slot->inflight("big"), 0);
  slot->model("big").start();
  EXPECT_EQ(slot->inflight("big"), 1);
  EXPECT_FALSE(slot->ttft_p95("big"));
}

// Threads record into shards of their own; the p95 reads the newest 200 samples across them, and
// in-flight counts add up whichever thread started or finished a request.
TEST(CostQuality, LoadTrackerWindowSpansThreads) {
  pipeline::LoadTracker load;
  pipeline::LoadTracker::Model& m = load.model("m");
  // Times after the tracker's start (ahead of the clock: a reader keeps those).
  const auto now = std::chrono::steady_clock::now() + std::chrono::seconds(3);
  core::set_thread_shard(0);
  for (int i = 0; i < 200; ++i)
    m.record_ttft(1.0, now - std::chrono::seconds(2)); // older
  m.start();
  std::thread other([&] {
    core::set_thread_shard(1);
    for (int i = 0; i < 200; ++i)
      m.record_ttft(0.25, now - std::chrono::seconds(1)); // newer, on the other shard
    m.start();
    m.finish();
    m.finish(); // the main thread's request, finished here
  });
  other.join();
  ASSERT_TRUE(m.ttft_p95());
  EXPECT_DOUBLE_EQ(*m.ttft_p95(), 0.25) << "the newer shard's 200 push the older ones out";
  EXPECT_EQ(m.inflight(), 0);
  for (int i = 0; i < 20; ++i)
    m.record_ttft(1.0, now); // the newest now: 20 of the 200
  EXPECT_DOUBLE_EQ(*m.ttft_p95(), 1.0);
}

// The routers learn the fixture's pattern and survive a save/load round trip.
TEST(CostQuality, RoutersTrainSaveLoadAndPredict) {
  auto data = models::load_outcomes(src("tests/fixtures/router/outcomes.jsonl"));
  ASSERT_TRUE(data) << data.error().message;
  EXPECT_EQ(data->models, (std::vector<std::string>{"big", "mid", "small"}));
  std::vector<size_t> rows(data->rows.size());
  for (size_t i = 0; i < rows.size(); ++i)
    rows[i] = i;
  auto wv = models::WordVectors::load_shared(src("models/glove-100d-sif"));
  ASSERT_TRUE(wv);
  const std::string dir = ::testing::TempDir() + "/semrouter-router-test";
  for (auto kind : {models::QualityRouterKind::Knn, models::QualityRouterKind::Mf,
                    models::QualityRouterKind::Linear}) {
    SCOPED_TRACE(models::router_kind_name(kind));
    models::QualityRouterOptions o;
    o.kind = kind;
    o.epochs = 30;
    o.buckets_log2 = 10;
    auto r = models::QualityRouter::train(*data, rows, *wv, "word_vectors",
                                          src("models/glove-100d-sif"), o);
    ASSERT_TRUE(r) << r.error().message;
    ASSERT_TRUE((*r)->save(dir));
    auto loaded = models::QualityRouter::load(dir);
    ASSERT_TRUE(loaded) << loaded.error().message;
    std::vector<float> a, b, hard, easy;
    (*r)->predict("solve the differential equation of the sea", a);
    (*loaded)->predict("solve the differential equation of the sea", b);
    ASSERT_EQ(a.size(), 3u);
    for (size_t m = 0; m < 3; ++m)
      EXPECT_NEAR(a[m], b[m], 2e-3) << "F16 storage";
    (*loaded)->predict("prove that the integral of winter", hard);
    (*loaded)->predict("recommend a movie about rivers", easy);
    const int big = (*loaded)->model_index("big"), small = (*loaded)->model_index("small");
    EXPECT_GT(hard[size_t(big)] - hard[size_t(small)],
              easy[size_t(big)] - easy[size_t(small)] + 0.2);
  }
  // Bad data names the problem and the line.
  const std::string bad = ::testing::TempDir() + "/bad-outcomes.jsonl";
  std::ofstream(bad) << "{\"prompt\": \"x\", \"scores\": {\"a\": 2}}\n";
  auto e = models::load_outcomes(bad);
  ASSERT_FALSE(e);
  EXPECT_NE(e.error().message.find(":1: score of \"a\" must be a number in [0, 1]"),
            std::string::npos)
      << e.error().message;
}

// RouteLLM's metrics on a hand-computed case.
TEST(CostQuality, PgrApgrAndCptFollowRouteLlm) {
  // 4 prompts: strong right on 0, 1, 2; weak right on 2, 3. q(strong) = 0.75, q(weak) = 0.5.
  std::vector<float> s{1, 1, 1, 0}, w{0, 0, 1, 1};
  // A router that ranks 0, 1 first (the prompts that gain) is the oracle here.
  auto e = models::evaluate_pair("S", "W", {0.9, 0.8, 0.1, 0.0}, s, w);
  ASSERT_EQ(e.curve.size(), 5u);
  EXPECT_DOUBLE_EQ(e.q_strong, 0.75);
  EXPECT_DOUBLE_EQ(e.q_weak, 0.5);
  // share 0.25: quality (1+0+1+1)/4 = 0.75 -> PGR 1.0; 0.5: 1.0 -> PGR 2.0; 0.75: 1.0; 1.0: 0.75.
  EXPECT_DOUBLE_EQ(e.curve[1].pgr, 1.0);
  EXPECT_DOUBLE_EQ(e.curve[2].pgr, 2.0);
  EXPECT_DOUBLE_EQ(e.curve[4].pgr, 1.0);
  EXPECT_DOUBLE_EQ(e.cpt50, 0.25);
  // Trapezoids: (0+1)/2·.25 + (1+2)/2·.25 + (2+2)/2·.25 + (2+1)/2·.25 = 0.125+0.375+0.5+0.375
  EXPECT_DOUBLE_EQ(e.apgr, 1.375);
  EXPECT_DOUBLE_EQ(e.apgr, e.oracle_apgr);
  // The reverse ranking loses first (PGR −1, −1, 0) and reaches PGR 0.5 only with every call
  // strong.
  auto bad = models::evaluate_pair("S", "W", {0.0, 0.1, 0.8, 0.9}, s, w);
  EXPECT_DOUBLE_EQ(bad.curve[1].pgr, -1.0);
  EXPECT_DOUBLE_EQ(bad.cpt50, 1.0);
  EXPECT_DOUBLE_EQ(bad.apgr, -0.375); // (−.5 −1 −.5 +.5)·.25
  // A router that cannot tell the prompts apart (every score equal) is a random router: the
  // curve is the straight line, whatever the file order.
  auto tied = models::evaluate_pair("S", "W", {0.3, 0.3, 0.3, 0.3}, s, w);
  EXPECT_DOUBLE_EQ(tied.apgr, 0.5);
  EXPECT_DOUBLE_EQ(tied.cpt50, 0.5);
  EXPECT_DOUBLE_EQ(tied.curve[1].pgr, 0.25);
}

} // namespace
} // namespace semrouter
