// signals::find_pii, merge_pii, redact_pii and the validators behind them.
// Input: the text. A second entity list, standing in for a model's hits, is drawn from the
// text's own bytes (spans anywhere, overlapping, empty or past the end).
// Checks: find_pii's and merge_pii's results are sorted, non-overlapping and non-empty;
// find_pii's lie inside the text and hold ASCII only; redaction skips entities that overlap, are
// empty or lie past the end (AddressSanitizer watches it).
#include <algorithm>

#include "fuzz_util.h"
#include "signals/pii.h"

using namespace semrouter;

namespace {

void check_entities(const std::vector<signals::PiiEntity>& es) {
  size_t prev_end = 0;
  for (const auto& e : es) {
    FUZZ_CHECK(e.begin < e.end);
    FUZZ_CHECK(e.begin >= prev_end);
    prev_end = e.end;
  }
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text = fuzz::as_text(data, size);

  const std::vector<signals::PiiEntity> found = signals::find_pii(text);
  check_entities(found);
  for (const auto& e : found) {
    FUZZ_CHECK(e.end <= text.size());
    for (size_t i = e.begin; i < e.end; ++i)
      FUZZ_CHECK(static_cast<unsigned char>(text[i]) < 0x80);
  }
  const std::string redacted = signals::redact_pii(text, found);
  if (found.empty())
    FUZZ_CHECK(redacted == text);

  std::vector<signals::PiiEntity> model;
  for (size_t i = 0; i + 3 <= size && model.size() < 16; i += 3) {
    signals::PiiEntity e;
    e.type = data[i] & 1 ? "person" : "location";
    e.begin = data[i + 1] % (size + 8);
    e.end = e.begin + data[i + 2] % 32;
    e.score = (data[i] >> 1) / 127.0;
    e.source = "model";
    model.push_back(e);
  }
  const std::vector<signals::PiiEntity> merged = signals::merge_pii(found, model);
  check_entities(merged);
  signals::redact_pii(text, merged);
  // Sorted as the contract asks, but overlapping, empty and past the end: those are skipped.
  std::stable_sort(model.begin(), model.end(),
                   [](const auto& x, const auto& y) { return x.begin < y.begin; });
  signals::redact_pii(text, model);

  signals::luhn_valid(text);
  signals::iban_valid(text);
  signals::us_ssn_valid(text);
  return 0;
}
