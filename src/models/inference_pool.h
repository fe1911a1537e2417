// A bounded pool of inference threads. Network threads hand work over and never run a model
// themselves; when the queue is full, submit() refuses at once instead of queueing without bound.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace semrouter::models {

class InferencePool {
public:
  struct Options {
    int workers = 1;
    int threads_per_job = 1; // GEMM / attention threads each worker may use
    size_t queue_capacity = 256;
  };
  explicit InferencePool(const Options& opts);
  ~InferencePool(); // finishes the queued jobs, then joins

  // Queues `job`; false (and the job is not run) when the queue is full or the pool is stopping.
  bool submit(std::function<void()> job);
  size_t queued() const;
  const Options& options() const { return opts_; }

private:
  void work();
  Options opts_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> q_;
  bool stopping_ = false;
  std::vector<std::thread> threads_;
};

} // namespace semrouter::models
