#include "models/linear.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "core/clock.h"

namespace semrouter::models {

namespace {

// The rows are scattered over a table of megabytes: fetch ahead so the cache misses overlap. A
// 2-class row takes a few cycles once loaded, so the fetch must lead by many features to cover a
// miss to memory: in the default config's routing, 24 took the logits from 5.3-5.8% of the
// cycles to 4.5-4.7% (8 before; 48 no better than 24).
constexpr size_t kAhead = 24;

// out[c] = b[c] + Σ_k x.val[k] · w[x.idx[k], c], in the order of k, for C classes known when
// compiled: the sums live in registers (a loop writing out[] would store and reload them for
// every feature, since out may alias w). Same operations in the same order as the generic loop.
template <uint32_t C> void logits_fixed(const LinearModel& m, const SparseVec& x, float* out) {
  float acc[C];
  for (uint32_t c = 0; c < C; ++c)
    acc[c] = m.b[c];
  const size_t n = x.idx.size();
  const float* w = m.row_base();
  const size_t stride = m.row_stride();
  for (size_t k = 0; k < std::min(n, kAhead); ++k)
    __builtin_prefetch(w + size_t(x.idx[k]) * stride);
  for (size_t k = 0; k < n; ++k) {
    if (k + kAhead < n)
      __builtin_prefetch(w + size_t(x.idx[k + kAhead]) * stride);
    const float* row = w + size_t(x.idx[k]) * stride;
    const float v = x.val[k];
    for (uint32_t c = 0; c < C; ++c)
      acc[c] += v * row[c];
  }
  for (uint32_t c = 0; c < C; ++c)
    out[c] = acc[c];
}

template <uint32_t C>
void add_dense_fixed(const LinearModel& m, const float* v, size_t n, float scale, uint32_t first,
                     float* out) {
  float acc[C];
  for (uint32_t c = 0; c < C; ++c)
    acc[c] = out[c];
  const size_t stride = m.row_stride();
  const float* w = m.row_base() + size_t(first) * stride;
  for (size_t d = 0; d < n; ++d) {
    const float x = v[d] * scale;
    for (uint32_t c = 0; c < C; ++c)
      acc[c] += x * w[d * stride + c];
  }
  for (uint32_t c = 0; c < C; ++c)
    out[c] = acc[c];
}

} // namespace

void LinearModel::add_dense(const float* v, size_t n, float scale, uint32_t first,
                            float* out) const {
  switch (classes) {
  case 2:
    return add_dense_fixed<2>(*this, v, n, scale, first, out);
  case 3:
    return add_dense_fixed<3>(*this, v, n, scale, first, out);
  case 14:
    return add_dense_fixed<14>(*this, v, n, scale, first, out);
  default:
    break;
  }
  const size_t stride = row_stride();
  const float* wd = row_base() + size_t(first) * stride;
  for (size_t d = 0; d < n; ++d) {
    const float x = v[d] * scale;
    for (uint32_t c = 0; c < classes; ++c)
      out[c] += x * wd[d * stride + c];
  }
}

void LinearModel::logits(const SparseVec& x, float* out) const {
  switch (classes) {
  case 2:
    return logits_fixed<2>(*this, x, out);
  case 3:
    return logits_fixed<3>(*this, x, out);
  case 14:
    return logits_fixed<14>(*this, x, out);
  default:
    break;
  }
  for (uint32_t c = 0; c < classes; ++c)
    out[c] = b[c];
  const size_t n = x.idx.size();
  const float* base = row_base();
  const size_t stride = row_stride();
  for (size_t k = 0; k < std::min(n, kAhead); ++k)
    __builtin_prefetch(base + size_t(x.idx[k]) * stride);
  for (size_t k = 0; k < n; ++k) {
    if (k + kAhead < n)
      __builtin_prefetch(base + size_t(x.idx[k + kAhead]) * stride);
    const float* row = base + size_t(x.idx[k]) * stride;
    const float v = x.val[k];
    for (uint32_t c = 0; c < classes; ++c)
      out[c] += v * row[c];
  }
}

std::vector<float> LinearModel::weights() const {
  if (!shared)
    return w;
  std::vector<float> out(size_t(dim) * classes);
  for (size_t i = 0; i < dim; ++i)
    std::copy_n(row_base() + i * stride, classes, out.data() + i * classes);
  return out;
}

void fuse_rows(const std::vector<LinearModel*>& models) {
  if (models.size() < 2)
    return;
  const uint32_t dim = models[0]->dim;
  uint32_t width = 0;
  for (const LinearModel* m : models) {
    if (m->shared || m->dim != dim || m->w.size() != size_t(dim) * m->classes)
      return;
    width += m->classes;
  }
  auto table = std::make_shared<std::vector<float>>(size_t(dim) * width);
  uint32_t offset = 0;
  for (LinearModel* m : models) {
    for (size_t i = 0; i < dim; ++i)
      std::copy_n(m->w.data() + i * m->classes, m->classes, table->data() + i * width + offset);
    m->offset = offset;
    offset += m->classes;
  }
  for (LinearModel* m : models) {
    m->shared = table;
    m->stride = width;
    std::vector<float>().swap(m->w);
  }
}

LinearModel train_linear(const std::vector<SparseVec>& x, const std::vector<int>& y, uint32_t dim,
                         uint32_t classes, const LinearTrainOptions& opts) {
  LinearModel m;
  m.dim = dim;
  m.classes = classes;
  m.w.assign(size_t(dim) * classes, 0.f);
  m.b.assign(classes, 0.f);
  std::vector<float> gw(size_t(dim) * classes, 0.f), gb(classes, 0.f); // AdaGrad accumulators
  std::vector<size_t> order(x.size());
  std::iota(order.begin(), order.end(), 0);
  core::Random rng(opts.seed);
  std::vector<float> z(classes), g(classes);
  const float eps = 1e-8f;
  for (int epoch = 0; epoch < opts.epochs; ++epoch) {
    for (size_t i = order.size(); i > 1; --i) // Fisher-Yates with our own generator: portable
      std::swap(order[i - 1], order[size_t(rng.next() % i)]);
    double loss = 0;
    for (size_t n : order) {
      const SparseVec& xi = x[n];
      m.logits(xi, z.data());
      float mx = *std::max_element(z.begin(), z.end());
      double sum = 0;
      for (uint32_t c = 0; c < classes; ++c)
        sum += std::exp(double(z[c] - mx));
      const float cw = (opts.class_weights.empty() ? 1.f : opts.class_weights[size_t(y[n])]) *
                       (opts.sample_weights.empty() ? 1.f : opts.sample_weights[n]);
      for (uint32_t c = 0; c < classes; ++c) {
        double p = std::exp(double(z[c] - mx)) / sum;
        g[c] = cw * float(p - (int(c) == y[n] ? 1.0 : 0.0));
      }
      loss += cw * -(double(z[size_t(y[n])] - mx) - std::log(sum));
      for (uint32_t c = 0; c < classes; ++c) {
        gb[c] += g[c] * g[c];
        m.b[c] -= opts.lr * g[c] / (std::sqrt(gb[c]) + eps);
      }
      for (size_t k = 0; k < xi.idx.size(); ++k) {
        float* row = m.w.data() + size_t(xi.idx[k]) * classes;
        float* acc = gw.data() + size_t(xi.idx[k]) * classes;
        const float v = xi.val[k];
        for (uint32_t c = 0; c < classes; ++c) {
          float gr = g[c] * v + opts.l2 * row[c];
          acc[c] += gr * gr;
          row[c] -= opts.lr * gr / (std::sqrt(acc[c]) + eps);
        }
      }
    }
    if (opts.progress)
      opts.progress(epoch + 1, loss / double(std::max<size_t>(1, x.size())));
  }
  return m;
}

double Platt::operator()(double s) const {
  return 1.0 / (1.0 + std::exp(-(a * s + b)));
}

Platt Platt::fit(const std::vector<double>& s, const std::vector<int>& y) {
  // Platt's targets with the prior correction; Newton steps with backtracking (Lin, Lin & Weng
  // 2007), which keeps separable data from diverging.
  double pos = 0, neg = 0;
  for (int v : y)
    (v ? pos : neg) += 1;
  const double hi = (pos + 1) / (pos + 2), lo = 1 / (neg + 2);
  auto loss = [&](double a, double b) {
    double l = 0;
    for (size_t i = 0; i < s.size(); ++i) {
      double t = y[i] ? hi : lo, f = a * s[i] + b;
      // log(1 + e^f) - t·f, computed stably
      l += (f >= 0 ? f + std::log1p(std::exp(-f)) : std::log1p(std::exp(f))) - t * f;
    }
    return l;
  };
  Platt p{0, std::log((neg + 1) / (pos + 1)) * -1};
  double cur = loss(p.a, p.b);
  for (int it = 0; it < 100; ++it) {
    double g1 = 0, g2 = 0, h11 = 1e-12, h22 = 1e-12, h12 = 0;
    for (size_t i = 0; i < s.size(); ++i) {
      double t = y[i] ? hi : lo;
      double q = p(s[i]);
      double d = q - t, w = q * (1 - q);
      g1 += d * s[i];
      g2 += d;
      h11 += w * s[i] * s[i];
      h22 += w;
      h12 += w * s[i];
    }
    if (std::fabs(g1) < 1e-9 && std::fabs(g2) < 1e-9)
      break;
    double det = h11 * h22 - h12 * h12;
    if (std::fabs(det) < 1e-18)
      break;
    double da = (h22 * g1 - h12 * g2) / det, db = (h11 * g2 - h12 * g1) / det;
    double step = 1;
    bool moved = false;
    for (int k = 0; k < 30; ++k, step /= 2) {
      double na = p.a - step * da, nb = p.b - step * db, nl = loss(na, nb);
      if (nl < cur - 1e-4 * step * (g1 * da + g2 * db)) {
        p.a = na;
        p.b = nb;
        cur = nl;
        moved = true;
        break;
      }
    }
    if (!moved)
      break;
  }
  return p;
}

} // namespace semrouter::models
