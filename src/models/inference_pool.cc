#include "models/inference_pool.h"

#include "nn/gemm.h"

namespace semrouter::models {

InferencePool::InferencePool(const Options& opts) : opts_(opts) {
  if (opts_.workers < 1)
    opts_.workers = 1;
  for (int i = 0; i < opts_.workers; ++i)
    threads_.emplace_back([this] { work(); });
}

InferencePool::~InferencePool() {
  {
    std::lock_guard<std::mutex> l(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  for (auto& t : threads_)
    t.join();
}

bool InferencePool::submit(std::function<void()> job) {
  {
    std::lock_guard<std::mutex> l(mu_);
    if (stopping_ || q_.size() >= opts_.queue_capacity)
      return false;
    q_.push_back(std::move(job));
  }
  cv_.notify_one();
  return true;
}

size_t InferencePool::queued() const {
  std::lock_guard<std::mutex> l(mu_);
  return q_.size();
}

void InferencePool::work() {
  nn::set_compute_threads(opts_.threads_per_job);
  for (;;) {
    std::function<void()> job;
    {
      std::unique_lock<std::mutex> l(mu_);
      cv_.wait(l, [&] { return stopping_ || !q_.empty(); });
      if (q_.empty())
        return; // stopping and drained
      job = std::move(q_.front());
      q_.pop_front();
    }
    job();
  }
}

} // namespace semrouter::models
