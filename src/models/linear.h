// Multinomial logistic regression over sparse (hashed) plus dense features, trained with AdaGrad
// in a fixed order from a fixed seed, so a rerun reproduces the same model bit for bit.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/status.h"
#include "models/features.h"

namespace semrouter::models {

struct LinearModel {
  uint32_t dim = 0; // number of features (hashed buckets + dense extras)
  uint32_t classes = 0;
  std::vector<float> w; // [dim × classes], feature-major (a sparse feature touches one row)
  std::vector<float> b; // [classes]
  // Set by fuse_rows: the rows live in a table shared with other models, row i at
  // shared->data() + i * stride + offset, and w is empty.
  std::shared_ptr<const std::vector<float>> shared;
  uint32_t stride = 0, offset = 0;

  const float* row_base() const { return shared ? shared->data() + offset : w.data(); }
  size_t row_stride() const { return shared ? stride : classes; }
  // The weights as w holds them ([dim × classes]), from the shared table when fused.
  std::vector<float> weights() const;

  // out[c] = b[c] + Σ x_i · w[i, c]
  void logits(const SparseVec& x, float* out) const;
  // out[c] += Σ_d (v[d] · scale) · w[first + d, c], in the order of d: dense features stored
  // from row `first` on.
  void add_dense(const float* v, size_t n, float scale, uint32_t first, float* out) const;
};

struct LinearTrainOptions {
  int epochs = 12;
  float lr = 0.2f;  // AdaGrad base rate
  float l2 = 1e-6f; // per-step weight decay on touched rows
  uint64_t seed = 42;
  // Per-class loss weights (empty: all 1), e.g. to balance classes.
  std::vector<float> class_weights;
  // Per-example loss weights (empty: all 1), multiplied with the class weight.
  std::vector<float> sample_weights;
  // Called after each epoch with the mean training loss.
  std::function<void(int epoch, double loss)> progress;
};

// Puts the models' rows side by side in one table (row i: each model's row i in turn) and points
// each at its columns, freeing their own tables: one feature's weights for all of them are then
// one fetch (one page, one or two cache lines) where they were one per model. Same memory, same
// results bit for bit. Does nothing unless there are two or more, each with its own rows and the
// same dim. It changes the models in place: call it before they are shared between threads.
// Code that reads or changes w directly must not be handed a fused model (w is empty); weights()
// reads either kind.
void fuse_rows(const std::vector<LinearModel*>& models);

LinearModel train_linear(const std::vector<SparseVec>& x, const std::vector<int>& y, uint32_t dim,
                         uint32_t classes, const LinearTrainOptions& opts);

// Platt scaling: p = σ(a · s + b), fitted by Newton's method on (score, 0/1 label) pairs.
struct Platt {
  double a = 1, b = 0;
  double operator()(double s) const;
  static Platt fit(const std::vector<double>& scores, const std::vector<int>& labels);
};

} // namespace semrouter::models
