#include "models/models.h"

#include <algorithm>
#include <cmath>

namespace semrouter::models {

std::vector<float> softmax(const float* logits, size_t n) {
  std::vector<float> p(n);
  if (n == 0)
    return p;
  float mx = *std::max_element(logits, logits + n);
  double sum = 0;
  for (size_t i = 0; i < n; ++i)
    sum += std::exp(double(logits[i] - mx));
  for (size_t i = 0; i < n; ++i)
    p[i] = float(std::exp(double(logits[i] - mx)) / sum);
  return p;
}

std::vector<Entity> merge_bio(const std::vector<std::string>& tags,
                              const std::vector<float>& scores,
                              const std::vector<std::pair<uint32_t, uint32_t>>& offsets) {
  std::vector<Entity> out;
  bool open = false;
  Entity cur;
  int n = 0;
  auto close = [&] {
    if (open) {
      cur.score /= float(n);
      out.push_back(cur);
    }
    open = false;
  };
  for (size_t i = 0; i < tags.size(); ++i) {
    if (offsets[i].first == offsets[i].second) {
      close();
      continue;
    }
    const std::string& t = tags[i];
    if (t == "O") {
      close();
      continue;
    }
    bool begin = t.rfind("B-", 0) == 0;
    bool inside = t.rfind("I-", 0) == 0;
    std::string type = (begin || inside) ? t.substr(2) : t;
    if (open && !begin && type == cur.type) {
      cur.end = offsets[i].second;
      cur.score += scores[i];
      ++n;
      continue;
    }
    close();
    cur = Entity{type, scores[i], offsets[i].first, offsets[i].second};
    n = 1;
    open = true;
  }
  close();
  return out;
}

} // namespace semrouter::models
