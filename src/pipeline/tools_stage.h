// Tool pre-filtering (plugins.tools): agents send ever longer tool catalogues and models choose
// worse as the list grows, so when a request carries more than max_tools tools only the top_k
// most similar to the latest user text go upstream (cosine between the embedder's vectors of the
// text and of each tool's name and description, plus a word-overlap term), together with the
// tools that must stay: those named in tool_choice, those the conversation already called, and
// the config's `always`. `block` tools never go upstream; a non-empty `allow` admits only its
// tools. The kept tool objects are the client's bytes, in the client's order.
#pragma once

#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "config/config.h"
#include "models/models.h"
#include "openai/request.h"

namespace semrouter::pipeline {

// Embeddings of tool descriptions by content hash, shared by every request (bounded; emptied
// when the embedder changes on reload). Thread-safe.
class ToolVectors {
public:
  std::vector<float> get(const models::Embedder& embedder, std::string_view text);

private:
  std::mutex mu_;
  const models::Embedder* embedder_ = nullptr;
  std::unordered_map<uint64_t, std::vector<float>> vectors_;
};

struct ToolScore {
  std::string name;
  double score = 0;
  bool kept = false;
  std::string why; // "always", "tool_choice", "called", "top_k", "fallback", "blocked", ...
};

struct ToolFilter {
  bool applied = false;          // the tools array changes
  std::string tools_json;        // the new array (when applied; "[]" means: drop the key)
  bool drop_tool_choice = false; // tool_choice named a tool that does not go upstream
  size_t total = 0, kept = 0;
  std::vector<ToolScore> scores; // every tool, in the client's order
};

// Decides which tools go upstream. `vectors` may be null (no shared cache).
ToolFilter filter_tools(const openai::RequestView& view, std::string_view body,
                        const config::ToolsPluginConfig& plugin, const models::Embedder* embedder,
                        ToolVectors* vectors);

// A tool's text as the filter reads it: its name split into words, then its description.
std::string tool_text(std::string_view name, std::string_view description);

} // namespace semrouter::pipeline
