// `semrouter bench`: records, answer extraction and grading, the request plan and body, the
// response collector over canned bytes, the report's maths, the charts, and the Grafana
// dashboard shipped in deploy/ (well-formed, every metric it queries registered by the router).
#include <filesystem>
#include <fstream>
#include <functional>
#include <regex>
#include <set>
#include <sstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "app/bench_data.h"
#include "app/bench_report.h"
#include "app/bench_request.h"
#include "app/bench_svg.h"

namespace semrouter::app {
namespace {

using nlohmann::json;

const std::string kSource = SEMROUTER_SOURCE_DIR;

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// ---- answer extraction ----

struct LetterCase {
  const char* text;
  int options;
  char want; // 0: none
};

TEST(BenchExtract, AnswerLetters) {
  const LetterCase cases[] = {
      {"The answer is (C)", 10, 'C'},
      {"the answer is C.", 10, 'C'},
      {"Answer: D", 10, 'D'},
      {"Final answer: **B**", 10, 'B'},
      {"So the correct answer is: (J)", 10, 'J'},
      {"answer is [E]", 10, 'E'},
      // The last phrase wins; one without a letter is skipped for an earlier one.
      {"I first thought the answer is (A). On reflection the answer is (B).", 10, 'B'},
      {"The answer is (G). I hope this answer is helpful.", 10, 'G'},
      // Lone letters.
      {"C", 10, 'C'},
      {"  (D) ", 10, 'D'},
      {"B.", 10, 'B'},
      {"**F**", 10, 'F'},
      // An option label at the start.
      {"C. Paris is the capital.", 10, 'C'},
      {"(B) because of the second law", 10, 'B'},
      // The last "(X)".
      {"Between (A) and (D), I pick (D) since it fits.", 10, 'D'},
      // The last standalone capital; "A" / "I" before a lower-case word are words.
      {"Option E looks right, I think", 10, 'E'},
      {"I believe so", 10, 0},
      {"A cat sat on a mat", 10, 0},
      // Out of range letters do not count.
      {"The answer is (E)", 4, 0},
      {"The answer is (D)", 4, 'D'},
      // Words that merely start with a letter are not letters.
      {"Answered already. Cats are mammals.", 10, 0},
      {"The answer is 42", 10, 0},
      {"", 10, 0},
  };
  for (const auto& c : cases) {
    auto got = extract_answer_letter(c.text, c.options);
    if (c.want == 0)
      EXPECT_FALSE(got.has_value()) << c.text << " -> " << got.value_or('?');
    else
      EXPECT_EQ(got.value_or('?'), c.want) << c.text;
  }
}

TEST(BenchExtract, TextAnswers) {
  BenchRecord r;
  r.kind = RecordKind::Prompt;
  r.answer = "Paris";
  EXPECT_TRUE(grade_answer(r, "The answer is Paris.").correct);
  EXPECT_TRUE(grade_answer(r, "It is paris, of course").correct);
  EXPECT_FALSE(grade_answer(r, "Parisian food is great").correct);
  // With an "answer is" phrase, only what follows it counts.
  EXPECT_FALSE(grade_answer(r, "Not Paris. The answer is Lyon.").correct);
  EXPECT_EQ(grade_answer(r, "Not Paris. The answer is Lyon.").extracted, "lyon");
  // Only its sentence: what comes after does not count.
  EXPECT_FALSE(grade_answer(r, "The answer is Lyon. Paris is larger.").correct);
  EXPECT_EQ(grade_answer(r, "The answer is Lyon! tok0 tok1").extracted, "lyon");
  r.answer = "3.14";
  EXPECT_TRUE(grade_answer(r, "Answer: 3.14. Done.").correct);
  EXPECT_FALSE(grade_answer(r, "Answer: 3.141").correct);
  r.answer = "New York";
  EXPECT_TRUE(grade_answer(r, "the answer is new  york!").correct);
  r.answer = "";
  EXPECT_FALSE(grade_answer(r, "anything").gradable);
  EXPECT_EQ(normalize_text_answer("  Hello,   World! "), "hello world");
}

TEST(BenchExtract, ReasoningIsNotGradedOnlyContent) {
  BenchRecord r;
  r.kind = RecordKind::MultipleChoice;
  r.options = 4;
  r.answer = "B";
  Grade g = grade_answer(r, "The answer is (B).");
  EXPECT_TRUE(g.gradable);
  EXPECT_TRUE(g.correct);
  EXPECT_EQ(g.extracted, "B");
  g = grade_answer(r, "no idea");
  EXPECT_TRUE(g.gradable);
  EXPECT_FALSE(g.correct);
  EXPECT_EQ(g.extracted, "");
}

// ---- records ----

TEST(BenchRecords, MultipleChoiceAsMmluPro) {
  auto r = parse_bench_record(
      R"({"id": 70, "category": "business", "src": "x", "question": "Pick one.",
          "options": ["alpha", "beta", "gamma"], "answer": "c", "answer_index": 2,
          "correct": {"m": 1}})",
      "line-1");
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->id, "70");
  EXPECT_EQ(r->kind, RecordKind::MultipleChoice);
  EXPECT_EQ(r->category, "business");
  EXPECT_EQ(r->answer, "C");
  EXPECT_EQ(r->options, 3);
  json m = json::parse(r->messages_json);
  ASSERT_EQ(m.size(), 1u);
  EXPECT_EQ(m[0]["role"], "user");
  EXPECT_EQ(m[0]["content"],
            "Pick one.\n\nA. alpha\nB. beta\nC. gamma\n\nAnswer with the letter of the correct "
            "option, as \"The answer is (X)\".");
}

TEST(BenchRecords, AnswerIndexAndNoAnswer) {
  auto r = parse_bench_record(R"({"question": "Q", "options": ["a", "b"], "answer_index": 1})",
                              "line-7");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->answer, "B");
  EXPECT_EQ(r->id, "line-7"); // the caller's fallback
  r = parse_bench_record(R"({"question": "Q", "options": ["a", "b"]})", "x");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->answer, "");
}

TEST(BenchRecords, PlainPrompts) {
  auto r = parse_bench_record(R"({"prompt": "Hi?", "answer": 8})", "l");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->kind, RecordKind::Prompt);
  EXPECT_EQ(r->answer, "8");
  EXPECT_EQ(json::parse(r->messages_json)[0]["content"], "Hi?");
  r = parse_bench_record(R"({"text": "Pick", "answer": "b"})", "l");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->answer, "B");
  EXPECT_EQ(r->options, kDefaultLetterOptions);
  r = parse_bench_record(
      R"({"messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "u"}],
          "category": "c", "question_id": "q9"})",
      "l");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->id, "q9");
  EXPECT_EQ(json::parse(r->messages_json).size(), 2u);
  EXPECT_EQ(r->answer, "");
}

TEST(BenchRecords, ErrorsNameTheField) {
  auto err = [](const char* line) {
    auto r = parse_bench_record(line, "l");
    return r ? std::string("(ok)") : r.error().message;
  };
  EXPECT_EQ(err("nope"), "not JSON");
  EXPECT_EQ(err("[1]"), "expected a JSON object");
  EXPECT_EQ(err(R"({"question": "Q", "options": []})"),
            "options: expected a non-empty array of strings");
  EXPECT_EQ(err(R"({"question": "Q", "options": ["a", 2]})"),
            "options: expected a non-empty array of strings");
  EXPECT_EQ(err(R"({"question": "Q", "options": ["a", "b"], "answer": "C"})"),
            "answer: expected a letter A-B (one per option), got \"C\"");
  EXPECT_EQ(err(R"({"question": "Q", "options": ["a", "b"], "answer_index": 2})"),
            "answer_index: expected an integer from 0 to 1, got 2");
  EXPECT_EQ(err(R"({"question": "", "options": ["a"]})"), "question: expected a non-empty string");
  EXPECT_EQ(err(R"({"category": "x"})"),
            "no prompt: expected \"question\" with \"options\" (multiple choice), \"prompt\", "
            "\"text\" or \"messages\"");
  EXPECT_EQ(err(R"({"prompt": "p", "answer": [1]})"), "answer: expected a string or a number");
  EXPECT_EQ(err(R"({"messages": [{"content": "x"}]})"),
            "messages: expected a non-empty array of {role, content} objects");
  EXPECT_EQ(err(R"({"prompt": "p", "category": 3})"), "category: expected a string");
}

TEST(BenchRecords, LoadsTheFixturesWithLimitAndNamesTheLine) {
  auto all = load_bench_records(kSource + "/tests/fixtures/bench/mc.jsonl", 0);
  ASSERT_TRUE(all) << all.error().message;
  ASSERT_EQ(all->size(), 6u);
  EXPECT_EQ((*all)[2].answer, "D"); // from answer_index
  EXPECT_EQ((*all)[5].options, 5);
  auto two = load_bench_records(kSource + "/tests/fixtures/bench/mc.jsonl", 2);
  ASSERT_TRUE(two);
  EXPECT_EQ(two->size(), 2u);
  auto prompts = load_bench_records(kSource + "/tests/fixtures/bench/prompts.jsonl", 0);
  ASSERT_TRUE(prompts);
  EXPECT_EQ(prompts->size(), 5u);

  const auto dir = std::filesystem::temp_directory_path() / "semrouter_bench_test";
  std::filesystem::create_directories(dir);
  const std::string bad = (dir / "bad.jsonl").string();
  std::ofstream(bad) << "{\"prompt\": \"ok\"}\n\n{\"question\": \"q\"}\n";
  auto r = load_bench_records(bad, 0);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().message, bad + ":3: options: expected a non-empty array of strings");
  EXPECT_FALSE(load_bench_records((dir / "missing.jsonl").string(), 0));
}

// ---- the plan and the request ----

TEST(BenchRequest, Endpoints) {
  auto e = parse_endpoint("http://127.0.0.1:8801");
  ASSERT_TRUE(e);
  EXPECT_FALSE(e->tls);
  EXPECT_EQ(e->host, "127.0.0.1");
  EXPECT_EQ(e->port, 8801);
  EXPECT_EQ(e->path, "/v1/chat/completions");
  e = parse_endpoint("https://api.example.com/v1/");
  ASSERT_TRUE(e);
  EXPECT_TRUE(e->tls);
  EXPECT_EQ(e->port, 443);
  EXPECT_EQ(e->path, "/v1/chat/completions");
  e = parse_endpoint("http://[::1]:9000/openai/v1/chat/completions");
  ASSERT_TRUE(e);
  EXPECT_EQ(e->host, "::1");
  EXPECT_EQ(e->port, 9000);
  EXPECT_EQ(e->path, "/openai/v1/chat/completions");
  e = parse_endpoint("http://host/proxy");
  ASSERT_TRUE(e);
  EXPECT_EQ(e->port, 80);
  EXPECT_EQ(e->path, "/proxy/v1/chat/completions");
  EXPECT_EQ(parse_endpoint("ftp://x").error().message,
            "--target: expected an http:// or https:// URL, got \"ftp://x\"");
  EXPECT_FALSE(parse_endpoint("http://:80"));
  EXPECT_FALSE(parse_endpoint("http://h:0"));
  EXPECT_FALSE(parse_endpoint("http://h:99999"));
  EXPECT_FALSE(parse_endpoint("http://h/x?y=1"));
}

TEST(BenchRequest, ConfigurationsWithoutAConfig) {
  std::vector<std::string> warnings;
  auto plan =
      plan_configurations({"auto", "qwen3", "oss"}, {ReasoningChoice::On, ReasoningChoice::Off},
                          nullptr, "qwen3", warnings);
  ASSERT_TRUE(plan) << plan.error().message;
  ASSERT_EQ(plan->size(), 5u);
  EXPECT_EQ((*plan)[0].label, "auto");
  EXPECT_EQ((*plan)[0].reasoning, ReasoningChoice::Router);
  EXPECT_TRUE((*plan)[0].edits.empty());
  EXPECT_EQ((*plan)[1].label, "qwen3/on");
  ASSERT_EQ((*plan)[1].edits.size(), 1u);
  EXPECT_EQ((*plan)[1].edits[0].key, "chat_template_kwargs");
  EXPECT_EQ((*plan)[1].edits[0].sub, "enable_thinking");
  EXPECT_EQ((*plan)[1].edits[0].raw_json_value, "true");
  EXPECT_EQ((*plan)[2].label, "qwen3/off");
  EXPECT_EQ((*plan)[2].edits[0].raw_json_value, "false");
  EXPECT_TRUE(warnings.empty());

  plan = plan_configurations({"oss"}, {ReasoningChoice::On, ReasoningChoice::Off}, nullptr,
                             "gpt-oss", warnings);
  ASSERT_TRUE(plan);
  EXPECT_EQ((*plan)[0].edits[0].key, "reasoning_effort");
  EXPECT_EQ((*plan)[0].edits[0].raw_json_value, "\"medium\"");
  EXPECT_EQ((*plan)[1].edits[0].raw_json_value, "\"low\"");

  plan = plan_configurations({"m"}, {ReasoningChoice::On, ReasoningChoice::Unset}, nullptr, "none",
                             warnings);
  ASSERT_TRUE(plan);
  ASSERT_EQ(plan->size(), 1u);
  EXPECT_EQ((*plan)[0].label, "m");
  ASSERT_EQ(warnings.size(), 1u);
  EXPECT_EQ(warnings[0],
            "m: no reasoning family (--reasoning-family none), so reasoning on cannot be set: "
            "skipped");

  warnings.clear();
  auto bad = plan_configurations({"m"}, {ReasoningChoice::On}, nullptr, "llama", warnings);
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().message, "--reasoning-family: unknown family \"llama\" (known: "
                                 "anthropic, deepseek, gpt-oss, qwen3, none)");
  bad = plan_configurations({"m"}, {ReasoningChoice::On}, nullptr, "none", warnings);
  ASSERT_FALSE(bad);
}

TEST(BenchRequest, ConfigurationsFromARouterConfig) {
  auto config = config::parse_config(config::embedded_default_config());
  ASSERT_TRUE(config) << config.error().message;
  std::vector<std::string> warnings;
  auto plan = plan_configurations({"MoM", "deepseek-v3", "llama-3.1-8b", "not-in-config"},
                                  {ReasoningChoice::On, ReasoningChoice::Off}, config->get(),
                                  "qwen3", warnings);
  ASSERT_TRUE(plan) << plan.error().message;
  std::vector<std::string> labels;
  for (const auto& c : *plan)
    labels.push_back(c.label);
  EXPECT_EQ(labels, (std::vector<std::string>{"MoM", "deepseek-v3/on", "deepseek-v3/off",
                                              "not-in-config/on", "not-in-config/off"}));
  EXPECT_EQ((*plan)[1].edits[0].sub, "thinking"); // the deepseek family, as the router sets it
  EXPECT_EQ((*plan)[3].family, "qwen3");
  EXPECT_EQ(warnings.size(), 2u); // llama has no family: on and off skipped

  PriceTable prices = prices_from_config(**config);
  EXPECT_DOUBLE_EQ(prices["qwen3-8b"].input_per_1m, 0.05);
  EXPECT_DOUBLE_EQ(prices["qwen3-8b"].output_per_1m, 0.20);
}

TEST(BenchRequest, Body) {
  BenchRecord rec;
  rec.messages_json = R"([{"role":"user","content":"hi"}])";
  BenchConfiguration cfg{"q/on",
                         "q",
                         ReasoningChoice::On,
                         "qwen3",
                         {{"chat_template_kwargs", "enable_thinking", "true"}}};
  RequestOptions o;
  o.max_tokens = 64;
  o.temperature = 0.0;
  json b = json::parse(build_request_body(rec, cfg, o));
  EXPECT_EQ(b["model"], "q");
  EXPECT_EQ(b["messages"][0]["content"], "hi");
  EXPECT_EQ(b["stream"], true);
  EXPECT_EQ(b["stream_options"]["include_usage"], true);
  EXPECT_EQ(b["max_tokens"], 64);
  EXPECT_EQ(b["temperature"], 0.0);
  EXPECT_EQ(b["chat_template_kwargs"]["enable_thinking"], true);
  o = {};
  o.stream = false;
  cfg.edits = {{"reasoning_effort", "", "\"high\""}};
  b = json::parse(build_request_body(rec, cfg, o));
  EXPECT_FALSE(b.contains("stream"));
  EXPECT_FALSE(b.contains("max_tokens"));
  EXPECT_EQ(b["reasoning_effort"], "high");
}

// ---- the response collector ----

std::string chunked(const std::vector<std::string>& pieces) {
  std::string out;
  for (const auto& p : pieces) {
    char size[32];
    std::snprintf(size, sizeof size, "%zx\r\n", p.size());
    out += size + p + "\r\n";
  }
  return out + "0\r\n\r\n";
}

// Feeds `bytes` in pieces of `step` bytes (the elapsed time is the offset), as a client would.
ResponseCollector::State feed_all(ResponseCollector& c, const std::string& bytes, size_t step) {
  std::string buffer;
  auto state = ResponseCollector::State::More;
  for (size_t at = 0; at < bytes.size() && state == ResponseCollector::State::More; at += step) {
    buffer += bytes.substr(at, step);
    size_t consumed = 0;
    state = c.feed(buffer, static_cast<double>(at), consumed);
    buffer.erase(0, consumed);
  }
  return state;
}

TEST(BenchCollector, StreamWithRouterHeadersUsageAndTtft) {
  const std::string head = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                           "x-semrouter-model: qwen3-8b\r\nx-semrouter-decision: math\r\n"
                           "x-semrouter-reasoning: on;budget=1024\r\n"
                           "Transfer-Encoding: chunked\r\n\r\n";
  const std::string events =
      "data: {\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\"}}]}\n\n"
      "data: {\"choices\":[{\"index\":0,\"delta\":{\"reasoning_content\":\"(A)?\"}}]}\n\n"
      "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"The answer is (C).\"}}]}\n\n"
      "data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n"
      "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":11,\"completion_tokens\":40,"
      "\"completion_tokens_details\":{\"reasoning_tokens\":30}}}\n\n"
      "data: [DONE]\n\n";
  const std::string bytes = head + chunked({events.substr(0, 50), events.substr(50)});
  for (size_t step : {bytes.size(), size_t{7}, size_t{1}}) {
    ResponseCollector c;
    ASSERT_EQ(feed_all(c, bytes, step), ResponseCollector::State::Done) << step;
    const ResponseOutcome& o = c.outcome();
    EXPECT_TRUE(o.ok()) << o.error;
    EXPECT_TRUE(o.streamed);
    EXPECT_TRUE(o.keep_alive);
    EXPECT_EQ(o.answer.content, "The answer is (C).");
    EXPECT_EQ(o.answer.reasoning_content, "(A)?");
    EXPECT_EQ(o.answer.prompt_tokens, 11u);
    EXPECT_EQ(o.answer.completion_tokens, 40u);
    EXPECT_EQ(o.answer.reasoning_tokens, 30u);
    EXPECT_EQ(o.routed_model, "qwen3-8b");
    EXPECT_EQ(o.decision, "math");
    EXPECT_EQ(o.reasoning, "on;budget=1024");
    // The first token: the reasoning event, not the role-only one before it.
    if (step == 1) {
      EXPECT_GT(o.ttft_ms, static_cast<double>(bytes.find("(A)?")));
      EXPECT_LT(o.ttft_ms, static_cast<double>(bytes.find("The answer is")));
    } else {
      EXPECT_GE(o.ttft_ms, 0);
    }
  }
}

TEST(BenchCollector, WholeBodyErrorsAndTruncation) {
  const std::string body =
      R"({"choices":[{"index":0,"message":{"role":"assistant","content":"B"},"finish_reason":"stop"}],)"
      R"("usage":{"prompt_tokens":3,"completion_tokens":1}})";
  ResponseCollector ok;
  ASSERT_EQ(feed_all(ok,
                     "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: " +
                         std::to_string(body.size()) + "\r\n\r\n" + body,
                     5),
            ResponseCollector::State::Done);
  EXPECT_TRUE(ok.outcome().ok());
  EXPECT_FALSE(ok.outcome().streamed);
  EXPECT_EQ(ok.outcome().answer.content, "B");
  EXPECT_EQ(ok.outcome().ttft_ms, -1);

  const std::string err = R"({"error":{"message":"mock: injected error 503","type":"x"}})";
  ResponseCollector e;
  ASSERT_EQ(feed_all(e,
                     "HTTP/1.1 503 Service Unavailable\r\nContent-Length: " +
                         std::to_string(err.size()) + "\r\n\r\n" + err,
                     1000),
            ResponseCollector::State::Done);
  EXPECT_FALSE(e.outcome().ok());
  EXPECT_EQ(e.outcome().status, 503);
  EXPECT_EQ(e.outcome().error, "HTTP 503: mock: injected error 503");

  ResponseCollector cut;
  EXPECT_EQ(feed_all(cut, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{\"choi", 1000),
            ResponseCollector::State::More);
  EXPECT_TRUE(cut.started());
  EXPECT_EQ(cut.eof(1), ResponseCollector::State::Failed);
  EXPECT_EQ(cut.outcome().error, "the connection closed in the middle of the response");

  ResponseCollector none;
  EXPECT_FALSE(none.started());
  EXPECT_EQ(none.eof(1), ResponseCollector::State::Failed);

  ResponseCollector junk;
  EXPECT_EQ(feed_all(junk, "SMTP ready\r\n\r\n", 100), ResponseCollector::State::Failed);
  EXPECT_EQ(error_message(500, "plain text"), "HTTP 500: plain text");
}

// ---- the report's maths ----

TEST(BenchReport, Percentiles) {
  std::vector<double> v;
  for (int i = 1; i <= 100; ++i)
    v.push_back(i);
  EXPECT_DOUBLE_EQ(percentile(v, 0.5), 50.5);
  EXPECT_NEAR(percentile(v, 0.95), 95.05, 1e-9);
  EXPECT_NEAR(percentile(v, 0.99), 99.01, 1e-9);
  EXPECT_DOUBLE_EQ(percentile(v, 0), 1);
  EXPECT_DOUBLE_EQ(percentile(v, 1), 100);
  EXPECT_DOUBLE_EQ(percentile({7}, 0.99), 7);
  EXPECT_DOUBLE_EQ(percentile({10, 20}, 0.5), 15);
  Distribution d = distribution({30, 10, 20});
  EXPECT_EQ(d.n, 3u);
  EXPECT_DOUBLE_EQ(d.mean, 20);
  EXPECT_DOUBLE_EQ(d.p50, 20);
  EXPECT_DOUBLE_EQ(d.max, 30);
  EXPECT_NEAR(d.p95, 29, 1e-9);
  EXPECT_EQ(distribution({}).n, 0u);
}

RequestResult result(size_t record, int status, const std::string& content, uint64_t prompt,
                     uint64_t completion, uint64_t reasoning, double latency,
                     const std::vector<BenchRecord>& records, const std::string& model = "",
                     const std::string& reasoning_header = "") {
  RequestResult r;
  r.record = record;
  r.latency_ms = latency;
  r.response.status = status;
  if (status != 200) {
    r.response.error = "HTTP " + std::to_string(status);
    r.grade.gradable = !records[record].answer.empty();
    return r;
  }
  r.response.answer.content = content;
  r.response.answer.usage = true;
  r.response.answer.prompt_tokens = prompt;
  r.response.answer.completion_tokens = completion;
  r.response.answer.reasoning_tokens = reasoning;
  r.response.routed_model = model;
  r.response.reasoning = reasoning_header;
  r.response.decision = model.empty() ? "" : "d";
  r.response.ttft_ms = latency / 2;
  r.grade = grade_answer(records[record], content);
  return r;
}

std::vector<BenchRecord> three_records() {
  std::vector<BenchRecord> recs(3);
  for (size_t i = 0; i < 3; ++i) {
    recs[i].id = std::to_string(i);
    recs[i].kind = RecordKind::MultipleChoice;
    recs[i].options = 4;
    recs[i].answer = "A";
  }
  recs[0].category = "math";
  recs[1].category = "math";
  recs[2].category = ""; // (none)
  return recs;
}

TEST(BenchReport, SummarizeCountsErrorsAsWrongAndPricesTheRoutedModel) {
  const auto recs = three_records();
  BenchConfiguration routed{"auto", "auto", ReasoningChoice::Router, "", {}};
  std::vector<RequestResult> rs = {
      result(0, 200, "The answer is (A)", 10, 20, 15, 100, recs, "big", "on;budget=1"),
      result(1, 200, "The answer is (B)", 10, 4, 0, 50, recs, "small", "off"),
      result(2, 503, "", 0, 0, 0, 5, recs)};
  PriceTable prices{{"big", {1.0, 10.0}}, {"small", {0.5, 1.0}}};
  ConfigurationReport rep = summarize(routed, recs, rs, prices);
  EXPECT_EQ(rep.total.requests, 3u);
  EXPECT_EQ(rep.total.errors, 1u);
  EXPECT_EQ(rep.total.gradable, 3u);
  EXPECT_EQ(rep.total.correct, 1u);
  EXPECT_DOUBLE_EQ(*rep.total.accuracy(), 1.0 / 3);
  EXPECT_EQ(rep.total.prompt_tokens, 20u);
  EXPECT_EQ(rep.total.completion_tokens, 24u);
  EXPECT_EQ(rep.total.reasoning_tokens, 15u);
  EXPECT_EQ(rep.total.with_usage, 2u);
  EXPECT_DOUBLE_EQ(rep.per_request(rep.total.completion_tokens), 12);
  // big: 10 * 1 + 20 * 10 = 210; small: 10 * 0.5 + 4 * 1 = 9 (per million)
  EXPECT_TRUE(rep.cost_known());
  EXPECT_NEAR(rep.total.cost_usd, 219e-6, 1e-15);
  EXPECT_EQ(rep.latency_ms.n, 2u); // the error is not a latency
  EXPECT_DOUBLE_EQ(rep.latency_ms.p50, 75);
  EXPECT_DOUBLE_EQ(rep.ttft_ms.p50, 37.5);
  EXPECT_EQ(rep.routes.at("big/on"), 1u);
  EXPECT_EQ(rep.routes.at("small/off"), 1u);
  EXPECT_EQ(rep.decisions.at("d"), 2u);
  EXPECT_EQ(rep.reasoning_on, 1u);
  EXPECT_EQ(rep.categories.at("math").correct, 1u);
  EXPECT_EQ(rep.categories.at("math").gradable, 2u);
  EXPECT_EQ(rep.categories.at("(none)").errors, 1u);
  ASSERT_EQ(rep.error_samples.size(), 1u);
  EXPECT_EQ(rep.rows.size(), 3u);
  EXPECT_EQ(rep.rows[0].route, "big/on");
  EXPECT_EQ(rep.rows[0].extracted, "A");

  // A model the price table lacks: cost unknown, and named.
  ConfigurationReport partial = summarize(routed, recs, rs, {{"big", {1.0, 1.0}}});
  EXPECT_FALSE(partial.cost_known());
  EXPECT_EQ(partial.unpriced, std::vector<std::string>{"small"});
}

TEST(BenchReport, ComparesRoutingWithAlwaysReasoning) {
  const auto recs = three_records();
  PriceTable prices{{"m", {1.0, 1.0}}};
  BenchConfiguration routed{"auto", "auto", ReasoningChoice::Router, "", {}};
  BenchConfiguration on{"m/on", "m", ReasoningChoice::On, "qwen3", {}};
  BenchConfiguration off{"m/off", "m", ReasoningChoice::Off, "qwen3", {}};
  const std::string right = "The answer is (A)", wrong = "The answer is (B)";
  BenchReport report;
  report.records = 3;
  report.configurations.push_back(summarize(routed, recs,
                                            {result(0, 200, right, 10, 40, 30, 10, recs, "m", "on"),
                                             result(1, 200, right, 10, 5, 0, 10, recs, "m", "off"),
                                             result(2, 200, wrong, 10, 5, 0, 10, recs, "m", "off")},
                                            prices));
  report.configurations.push_back(summarize(on, recs,
                                            {result(0, 200, right, 10, 40, 30, 20, recs),
                                             result(1, 200, right, 10, 40, 30, 20, recs),
                                             result(2, 200, wrong, 10, 40, 30, 20, recs)},
                                            prices));
  report.configurations.push_back(
      summarize(off, recs,
                {result(0, 200, wrong, 10, 5, 0, 5, recs), result(1, 200, right, 10, 5, 0, 5, recs),
                 result(2, 200, wrong, 10, 5, 0, 5, recs)},
                prices));
  report.comparisons = compare(report.configurations);
  ASSERT_EQ(report.comparisons.size(), 2u);
  const Comparison& c = report.comparisons[0];
  EXPECT_EQ(c.routed, "auto");
  EXPECT_EQ(c.against, "m/on");
  EXPECT_TRUE(c.against_reasoning);
  EXPECT_DOUBLE_EQ(*c.accuracy_routed, 2.0 / 3);
  EXPECT_DOUBLE_EQ(*c.accuracy_against, 2.0 / 3);
  EXPECT_DOUBLE_EQ(c.completion_per_request_routed, 50.0 / 3);
  EXPECT_DOUBLE_EQ(c.completion_per_request_against, 40);
  EXPECT_EQ(comparison_sentence(c),
            "auto: 100% of m/on's accuracy (0.667 vs 0.667) for 42% of its completion tokens "
            "(16.7 vs 40.0 per request; reasoning 10.0 vs 30.0), 53% of its cost, 50% of its "
            "p50 latency");
  EXPECT_FALSE(report.comparisons[1].against_reasoning);

  const std::string text = format_report(report);
  EXPECT_NE(text.find("auto picked: m/off 2, m/on 1; decisions: d 3; reasoning on for 1/3"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("0.667 (2/3)"), std::string::npos);
  EXPECT_NE(text.find("[always reasoning]"), std::string::npos);
  EXPECT_NE(text.find("accuracy per category:"), std::string::npos);

  json j = report_json(report);
  ASSERT_EQ(j["configurations"].size(), 3u);
  EXPECT_EQ(j["configurations"][0]["router"]["routes"]["m/on"], 1);
  EXPECT_EQ(j["configurations"][1]["totals"]["completion_tokens"], 120);
  EXPECT_EQ(j["configurations"][1]["totals"]["reasoning_tokens"], 90);
  EXPECT_EQ(j["configurations"][2]["totals"]["correct"], 1);
  EXPECT_EQ(j["configurations"][0]["results"].size(), 3u);
  EXPECT_EQ(j["comparisons"][0]["against_always_reasoning"], true);
  EXPECT_EQ(j["configurations"][0]["categories"]["math"]["correct"], 2);
}

TEST(BenchReport, PriceFiles) {
  auto p = parse_prices(R"({"a": {"input_per_1m": 1, "output_per_1m": 2.5}, "b": {}})");
  ASSERT_TRUE(p) << p.error().message;
  EXPECT_DOUBLE_EQ(p->at("a").output_per_1m, 2.5);
  EXPECT_DOUBLE_EQ(p->at("b").input_per_1m, 0);
  EXPECT_EQ(parse_prices(R"({"a": {"input": 1}})").error().message,
            "a: unknown key \"input\" (known: input_per_1m, output_per_1m)");
  EXPECT_EQ(parse_prices(R"({"a": {"input_per_1m": -1}})").error().message,
            "a.input_per_1m: expected a number from 0 to 1e9, got -1");
  EXPECT_FALSE(parse_prices("[]"));
  auto f = load_price_file(kSource + "/tests/fixtures/bench/pricing.json");
  ASSERT_TRUE(f);
  EXPECT_DOUBLE_EQ(f->at("mock-model").input_per_1m, 1.0);
  EXPECT_EQ(load_price_file("/nonexistent.json").error().message,
            "--pricing: cannot open /nonexistent.json");
}

// ---- charts ----

// Every element opened is closed, in order: enough to know the document is well-formed for the
// tags this writer emits (no text contains < or &, they are escaped).
bool balanced(const std::string& svg) {
  std::vector<std::string> open;
  std::regex tag("<(/?)([a-zA-Z]+)[^>]*?(/?)>");
  for (auto it = std::sregex_iterator(svg.begin(), svg.end(), tag); it != std::sregex_iterator();
       ++it) {
    const auto& m = *it;
    if (m[3] == "/")
      continue;
    if (m[1] == "/") {
      if (open.empty() || open.back() != m[2])
        return false;
      open.pop_back();
    } else {
      open.push_back(m[2]);
    }
  }
  return open.empty();
}

TEST(BenchSvg, TicksAndEscaping) {
  EXPECT_EQ(nice_ticks(0, 10, 5), (std::vector<double>{0, 2, 4, 6, 8, 10}));
  EXPECT_EQ(nice_ticks(0, 73, 5), (std::vector<double>{0, 20, 40, 60, 80}));
  EXPECT_EQ(nice_ticks(0, 0.3, 3), (std::vector<double>{0, 0.1, 0.2, 0.3}));
  EXPECT_EQ(nice_ticks(0, 1, 5), (std::vector<double>{0, 0.2, 0.4, 0.6, 0.8, 1}));
  EXPECT_EQ(nice_ticks(0, 0, 5), (std::vector<double>{0, 0.2, 0.4, 0.6, 0.8, 1}));
  EXPECT_EQ(svg_escape("a<b & \"c\"'"), "a&lt;b &amp; &quot;c&quot;&#39;");
}

TEST(BenchSvg, ChartsAreWellFormedPlainSvg) {
  std::vector<ScatterPoint> pts = {{"auto", 20, 0.8, PointKind::Routed},
                                   {"m/on", 60, 0.82, PointKind::AlwaysReasoning},
                                   {"m<off>", 5, 0.5, PointKind::Fixed}};
  std::string s = scatter_chart("Accuracy & tokens", "tokens", "accuracy", pts);
  EXPECT_EQ(s.rfind("<svg xmlns=\"http://www.w3.org/2000/svg\"", 0), 0u);
  EXPECT_TRUE(balanced(s)) << s;
  EXPECT_EQ(s.find("<script"), std::string::npos);
  EXPECT_NE(s.find("m&lt;off&gt;"), std::string::npos);
  EXPECT_NE(s.find("<title>Accuracy &amp; tokens</title>"), std::string::npos);
  EXPECT_NE(s.find("<polygon"), std::string::npos); // the routed diamond
  EXPECT_NE(s.find("reasoning always on"), std::string::npos);

  std::string b = grouped_bar_chart("Per category", "accuracy", {"math", "law"}, {"a", "b"},
                                    {{0.5, 1.0}, {std::nullopt, 0.25}});
  EXPECT_TRUE(balanced(b)) << b;
  // Three bars (one value is missing), plus the background, the frame and two legend keys.
  size_t rects = 0;
  for (size_t at = b.find("<rect"); at != std::string::npos; at = b.find("<rect", at + 1))
    ++rects;
  EXPECT_EQ(rects, 3u + 4u);

  BenchReport empty;
  EXPECT_EQ(accuracy_vs_tokens_svg(empty), "");
  EXPECT_EQ(category_accuracy_svg(empty), "");
}

// ---- the Grafana dashboard ----

TEST(BenchGrafana, DashboardIsValidAndQueriesOnlyRegisteredMetrics) {
  const std::string path = kSource + "/deploy/grafana/semrouter-dashboard.json";
  json d = json::parse(read_file(path), nullptr, false);
  ASSERT_FALSE(d.is_discarded()) << path << " is not JSON";
  ASSERT_TRUE(d.contains("panels") && d["panels"].is_array());
  EXPECT_TRUE(d.contains("title") && d.contains("uid") && d.contains("schemaVersion"));

  // Every metric name the router registers: the string literals that name them in src/.
  std::set<std::string> registered;
  std::regex literal("\"(semrouter_[a-z0-9_]+)\"");
  for (const auto& e : std::filesystem::recursive_directory_iterator(kSource + "/src")) {
    const auto ext = e.path().extension();
    if (ext != ".cc" && ext != ".h")
      continue;
    const std::string text = read_file(e.path().string());
    for (auto it = std::sregex_iterator(text.begin(), text.end(), literal);
         it != std::sregex_iterator(); ++it)
      registered.insert((*it)[1]);
  }
  ASSERT_GT(registered.size(), 40u);

  std::set<std::string> used;
  std::set<int> ids;
  std::regex name("semrouter_[a-z0-9_]+");
  size_t targets = 0;
  std::function<void(const json&)> walk = [&](const json& panel) {
    if (panel.contains("id")) {
      EXPECT_TRUE(ids.insert(panel["id"].get<int>()).second)
          << "duplicate panel id " << panel["id"];
    }
    if (panel.contains("targets"))
      for (const auto& t : panel["targets"]) {
        ASSERT_TRUE(t.contains("expr")) << panel.dump();
        const std::string expr = t["expr"];
        ++targets;
        for (auto it = std::sregex_iterator(expr.begin(), expr.end(), name);
             it != std::sregex_iterator(); ++it)
          used.insert(it->str());
      }
    if (panel.contains("panels"))
      for (const auto& p : panel["panels"])
        walk(p);
  };
  for (const auto& p : d["panels"])
    walk(p);
  for (const auto& v : d["templating"]["list"]) {
    const std::string q = v.value("query", std::string());
    for (auto it = std::sregex_iterator(q.begin(), q.end(), name); it != std::sregex_iterator();
         ++it)
      used.insert(it->str());
  }
  EXPECT_GT(targets, 20u);
  for (std::string m : used) {
    for (const char* suffix : {"_bucket", "_sum", "_count"}) {
      const std::string s = suffix;
      if (m.size() > s.size() && m.compare(m.size() - s.size(), s.size(), s) == 0 &&
          registered.count(m.substr(0, m.size() - s.size())))
        m = m.substr(0, m.size() - s.size());
    }
    EXPECT_TRUE(registered.count(m))
        << "the dashboard queries " << m << ", which no source file registers";
  }
}

} // namespace
} // namespace semrouter::app
