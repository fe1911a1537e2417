#include "models/language_id.h"

#include <fasttext/fasttext.h>

#include <sstream>

#include <fmt/format.h>

namespace semrouter::models {

using core::ErrorCode;
using core::make_error;

LanguageId::~LanguageId() = default;

core::StatusOr<std::shared_ptr<const LanguageId>> LanguageId::load(const std::string& path) {
  std::shared_ptr<LanguageId> l(new LanguageId());
  l->ft_ = std::make_unique<fasttext::FastText>();
  try {
    l->ft_->loadModel(path); // throws on a missing or malformed file
  } catch (const std::exception& e) {
    return make_error(ErrorCode::InvalidArgument,
                      fmt::format("{}: not a loadable fastText model: {}", path, e.what()));
  }
  return std::shared_ptr<const LanguageId>(std::move(l));
}

LanguageGuess LanguageId::detect(std::string_view text) const {
  // fastText reads one line; newlines would end the text early.
  std::string line(text);
  for (auto& c : line)
    if (c == '\n' || c == '\r')
      c = ' ';
  line += '\n';
  std::istringstream in(line);
  std::vector<std::pair<fasttext::real, std::string>> preds;
  ft_->predictLine(in, preds, 1, 0.0);
  if (preds.empty())
    return {"und", 0.f};
  std::string code = preds[0].second;
  if (code.rfind("__label__", 0) == 0)
    code = code.substr(9);
  return {code, float(preds[0].first)};
}

} // namespace semrouter::models
