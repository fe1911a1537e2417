#include "models/dataset.h"

#include <functional>

#include <zlib.h>

#include <algorithm>
#include <set>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "models/features.h"

namespace semrouter::models {

using core::ErrorCode;
using core::make_error;
using json = nlohmann::json;

const std::vector<std::string>& default_small_models() {
  static const std::vector<std::string> m = {"c4ai-command-r-v01",
                                             "gemma-7b",
                                             "Llama-2-13b-hf",
                                             "Llama-2-7b-hf",
                                             "mathstral-7B",
                                             "Meta-Llama-3-8B",
                                             "Meta-Llama-3_1-8B",
                                             "Meta-Llama-3_1-8B-Instruct",
                                             "Mistral-7B-Instruct-v0.1",
                                             "Mistral-7B-Instruct-v0.2",
                                             "Mistral-7B-v0.1",
                                             "Mistral-7B-v0.2-hf",
                                             "Phi-3-mini-4k-instruct",
                                             "Qwen1.5-7B-Chat",
                                             "Yi-34B",
                                             "Yi-6B",
                                             "Yi-6b-Chat"};
  return m;
}

bool in_holdout(const std::string& key, double fraction) {
  return double(fnv1a(key) % 10000) < fraction * 10000.0;
}

namespace {

std::string key_of(const json& j) {
  if (j.is_string())
    return j.get<std::string>();
  return j.dump();
}

// Errors carry only what is wrong; the caller prefixes the file and line.
core::Status label_record(const json& r, const DatasetOptions& o, Example& e) {
  auto err = [&](const std::string& m) { return make_error(ErrorCode::InvalidArgument, m); };
  if (r.contains("text") && r["text"].is_string()) {
    e.text = r["text"].get<std::string>();
  } else if (r.contains("question") && r["question"].is_string()) {
    e.text = r["question"].get<std::string>();
    if (o.include_options && r.contains("options") && r["options"].is_array())
      for (const auto& opt : r["options"])
        if (opt.is_string())
          e.text += "\n" + opt.get<std::string>();
  } else {
    return err("no \"text\" (or MMLU-Pro \"question\") string field");
  }
  if (r.contains("id"))
    e.split_key = "id:" + key_of(r["id"]);
  else if (r.contains("group"))
    e.split_key = "group:" + key_of(r["group"]);
  else
    e.split_key = "text:" + e.text;
  if (r.contains("kind") && r["kind"].is_string())
    e.kind = r["kind"].get<std::string>();
  const json* label = r.contains("label") ? &r["label"] : nullptr;
  if (o.task == "domain") {
    if (!label && r.contains("category"))
      label = &r["category"];
    if (!label || !label->is_string())
      return err("no \"label\" (or MMLU-Pro \"category\") string");
    e.label = label->get<std::string>();
  } else if (o.task == "complexity") {
    if (label) {
      std::string l = label->is_string() ? label->get<std::string>() : label->dump();
      if (l == "hard" || l == "1" || l == "true")
        e.label = "hard";
      else if (l == "easy" || l == "0" || l == "false")
        e.label = "easy";
      else
        return err(fmt::format("complexity label must be hard/easy (or 1/0), got {}", l));
    } else if (r.contains("correct") && r["correct"].is_object()) {
      double right = 0, n = 0;
      for (const auto& m : o.small_models) {
        auto it = r["correct"].find(m);
        if (it == r["correct"].end() || it->is_null())
          continue;
        right += it->get<double>();
        n += 1;
      }
      if (n == 0) {
        e.label.clear(); // no small model answered it: nothing to learn from, skipped
        return {};
      }
      e.label = right / n < o.hard_threshold ? "hard" : "easy";
    } else {
      return err("no \"label\" and no MMLU-Pro \"correct\" object");
    }
  } else if (o.task == "reasoning") {
    if (!label)
      return err("no \"label\" (reason or direct)");
    std::string l = label->is_string() ? label->get<std::string>() : label->dump();
    if (l == "reason" || l == "1" || l == "true")
      e.label = "reason";
    else if (l == "direct" || l == "0" || l == "false")
      e.label = "direct";
    else
      return err(fmt::format("reasoning label must be reason/direct (or 1/0), got {}", l));
  } else if (o.task == "jailbreak") {
    if (!label || !label->is_string())
      return err("no \"label\" string (jailbreak or benign)");
    std::string l = label->get<std::string>();
    if (l != "jailbreak" && l != "benign")
      return err(fmt::format("jailbreak label must be \"jailbreak\" or \"benign\", got \"{}\"", l));
    e.label = l;
  } else if (o.task == "language") {
    if (!label || !label->is_string())
      return err("no \"label\" string (an ISO 639 language code)");
    e.label = label->get<std::string>();
  } else {
    return make_error(
        ErrorCode::InvalidArgument,
        fmt::format("unknown task \"{}\" (domain, complexity, reasoning, jailbreak, language)",
                    o.task));
  }
  return {};
}

} // namespace

core::Status for_each_jsonl(const std::string& path,
                            const std::function<core::Status(std::string_view line)>& fn) {
  gzFile f = gzopen(path.c_str(), "rb"); // reads plain files too
  if (!f)
    return make_error(ErrorCode::NotFound, fmt::format("cannot open {}", path));
  std::string line;
  std::vector<char> buf(1 << 16);
  size_t lineno = 0;
  bool eof = false;
  while (!eof) {
    line.clear();
    for (;;) {
      char* r = gzgets(f, buf.data(), int(buf.size()));
      if (!r) {
        eof = true;
        break;
      }
      line += r;
      if (!line.empty() && line.back() == '\n')
        break;
    }
    if (line.empty() && eof)
      break;
    ++lineno;
    while (!line.empty() && (line.back() == '\n' || line.back() == '\r'))
      line.pop_back();
    if (line.find_first_not_of(" \t") == std::string::npos)
      continue;
    if (auto st = fn(line); !st) {
      gzclose(f);
      return make_error(st.error().code,
                        fmt::format("{}:{}: {}", path, lineno, st.error().message));
    }
  }
  gzclose(f);
  return {};
}

core::Status for_each_json_record(const std::string& path,
                                  const std::function<core::Status(const json&)>& fn) {
  return for_each_jsonl(path, [&](std::string_view line) -> core::Status {
    json r;
    try {
      r = json::parse(line);
    } catch (const json::exception& e) {
      return make_error(ErrorCode::InvalidArgument, fmt::format("not JSON: {}", e.what()));
    }
    return fn(r);
  });
}

core::StatusOr<std::vector<Example>> load_examples(const std::string& path,
                                                   const DatasetOptions& opts) {
  std::vector<Example> out;
  auto st = for_each_json_record(path, [&](const json& r) -> core::Status {
    Example ex;
    if (auto ls = label_record(r, opts, ex); !ls)
      return ls;
    if (!ex.label.empty())
      out.push_back(std::move(ex));
    return {};
  });
  if (!st)
    return tl::unexpected(st.error());
  if (out.empty())
    return make_error(ErrorCode::InvalidArgument, fmt::format("{}: no records", path));
  return out;
}

std::vector<std::string> label_set(const std::string& task, const std::vector<Example>& examples) {
  if (task == "complexity")
    return {"easy", "hard"};
  if (task == "jailbreak")
    return {"benign", "jailbreak"};
  if (task == "reasoning")
    return {"direct", "reason"};
  std::set<std::string> s;
  for (const auto& e : examples)
    s.insert(e.label);
  return {s.begin(), s.end()};
}

} // namespace semrouter::models
