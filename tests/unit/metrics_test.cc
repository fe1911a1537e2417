#include "metrics/metrics.h"

#include <thread>
#include <vector>

#include <gtest/gtest.h>

namespace semrouter::metrics {
namespace {

TEST(Metrics, ExpositionFormat) {
  Registry r;
  auto& c = r.counter("x_requests_total", "Requests.", {"model", "status"});
  c.with({"a\"b\\c\nd", "200"}).inc(3);
  auto& g = r.gauge("x_inflight", "In flight.");
  g.with({}).add(2);
  auto& h = r.histogram("x_latency_seconds", "Latency.", {"model"}, {0.1, 1});
  h.with({"m"}).observe(0.05);
  h.with({"m"}).observe(0.5);
  h.with({"m"}).observe(5);
  std::string text = r.expose();
  EXPECT_NE(text.find("# TYPE x_requests_total counter\n"), std::string::npos);
  EXPECT_NE(text.find("x_requests_total{model=\"a\\\"b\\\\c\\nd\",status=\"200\"} 3\n"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("x_inflight 2\n"), std::string::npos);
  EXPECT_NE(text.find("x_latency_seconds_bucket{model=\"m\",le=\"0.1\"} 1\n"), std::string::npos)
      << text;
  EXPECT_NE(text.find("x_latency_seconds_bucket{model=\"m\",le=\"1\"} 2\n"), std::string::npos);
  EXPECT_NE(text.find("x_latency_seconds_bucket{model=\"m\",le=\"+Inf\"} 3\n"), std::string::npos);
  EXPECT_NE(text.find("x_latency_seconds_sum{model=\"m\"} 5.55\n"), std::string::npos) << text;
  EXPECT_NE(text.find("x_latency_seconds_count{model=\"m\"} 3\n"), std::string::npos);
}

TEST(Metrics, BucketBoundsArePlainNumbers) {
  Registry r;
  r.histogram("x_seconds", "X.", {}, {0.0005, 10, 120}).with({}).observe(1);
  std::string text = r.expose();
  EXPECT_NE(text.find("x_seconds_bucket{le=\"0.0005\"} 0\n"), std::string::npos) << text;
  EXPECT_NE(text.find("x_seconds_bucket{le=\"10\"} 1\n"), std::string::npos) << text; // not 1e+01
  EXPECT_NE(text.find("x_seconds_bucket{le=\"120\"} 1\n"), std::string::npos) << text;
}

TEST(Metrics, ConcurrentIncrementsAreCounted) {
  Registry r;
  auto& c = r.counter("x_total", "X.", {"k"});
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&] {
      for (int i = 0; i < 10000; ++i)
        c.with({"v"}).inc();
    });
  for (auto& t : threads)
    t.join();
  EXPECT_EQ(c.with({"v"}).value(), 40000u);
}

// Adds from many threads (more than the shards) all count; set() replaces them.
TEST(Metrics, GaugeAddsFromThreadsSumAndSetReplaces) {
  Gauge g;
  std::vector<std::thread> threads;
  for (int t = 0; t < int(kShards) + 2; ++t)
    threads.emplace_back([&] {
      for (int i = 0; i < 1000; ++i) {
        g.add(1);
        g.add(-0.5);
      }
    });
  for (auto& t : threads)
    t.join();
  EXPECT_DOUBLE_EQ(g.value(), 500.0 * (kShards + 2));
  g.set(3);
  EXPECT_DOUBLE_EQ(g.value(), 3.0);
  g.add(1);
  EXPECT_DOUBLE_EQ(g.value(), 4.0);
}

// Threads observe into separate shards (more threads than shards, so some share one); read()
// adds them all up, buckets and sum alike.
TEST(Metrics, ConcurrentObservationsAreCountedAcrossShards) {
  Histogram h({1, 10});
  constexpr int kThreads = int(kShards) + 2;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t)
    threads.emplace_back([&] {
      for (int i = 0; i < 1000; ++i) {
        h.observe(0.5);
        h.observe(5);
        h.observe(50);
      }
    });
  for (auto& t : threads)
    t.join();
  std::vector<uint64_t> cumulative;
  double sum = 0;
  uint64_t count = 0;
  h.read(cumulative, sum, count);
  ASSERT_EQ(cumulative.size(), 3u);
  EXPECT_EQ(cumulative[0], 1000u * kThreads);
  EXPECT_EQ(cumulative[1], 2000u * kThreads);
  EXPECT_EQ(cumulative[2], 3000u * kThreads);
  EXPECT_EQ(count, 3000u * kThreads);
  EXPECT_DOUBLE_EQ(sum, 55.5 * 1000 * kThreads);
}

} // namespace
} // namespace semrouter::metrics
