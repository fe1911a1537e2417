// Language identification with a fastText model (the embedded default is fastText's lid.176.ftz:
// 176 languages, ISO 639 codes).
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "core/status.h"

namespace fasttext {
class FastText;
}

namespace semrouter::models {

struct LanguageGuess {
  std::string code; // ISO 639 code without fastText's "__label__" prefix; "und" if unknown
  float confidence = 0;
};

class LanguageId {
public:
  static core::StatusOr<std::shared_ptr<const LanguageId>> load(const std::string& path);
  ~LanguageId();
  LanguageGuess detect(std::string_view text) const;

private:
  LanguageId() = default;
  std::unique_ptr<fasttext::FastText> ft_;
};

} // namespace semrouter::models
