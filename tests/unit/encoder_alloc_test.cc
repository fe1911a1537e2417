// After warm-up, an encoder forward pass allocates nothing from our code: every buffer lives in the
// Workspace and every oneDNN primitive is bound once per thread. Counts global operator new calls
// made on the test's thread while counting is on (own binary: it replaces operator new).
// With OpenBLAS there must be none at all. oneDNN's primitive execution builds a small argument
// context of its own on each call (inside libdnnl, a few allocations per GEMM); there the test
// checks that the count is the same on every pass, i.e. nothing grows or is re-created.
#include <cstdlib>
#include <new>

#include <gtest/gtest.h>

#include "models/transformer.h"
#include "nn/encoder.h"

namespace {
thread_local bool g_counting = false;
thread_local long g_news = 0;
} // namespace

void* operator new(std::size_t n) {
  if (g_counting)
    ++g_news;
  if (void* p = std::malloc(n ? n : 1))
    return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept {
  std::free(p);
}
void operator delete(void* p, std::size_t) noexcept {
  std::free(p);
}

using namespace semrouter;

namespace {

long allocations_per_pass(const std::string& folder, nn::Precision p, nn::Backend backend) {
  std::string dir = std::string(SEMROUTER_SOURCE_DIR) + "/tests/fixtures/encoders/" + folder;
  auto m = models::TransformerModel::load(dir, {{backend, p}, 0});
  EXPECT_TRUE(m.has_value()) << m.error().message;
  if (!m)
    return -1;
  std::vector<std::string_view> texts{"The quick brown fox jumps over the lazy dog.", "Short one."};
  auto r = (*m)->run(texts, models::Task::Embed);
  auto st = nn::SafeTensors::open(dir + "/model.safetensors");
  auto enc = nn::Encoder::load((*m)->config(), *st, {backend, p});
  EXPECT_TRUE(enc.has_value());
  if (!enc)
    return -1;
  nn::Workspace ws;
  (*enc)->forward(r->batch, ws); // warm-up: buffers grow, primitives are created
  (*enc)->forward(r->batch, ws);
  std::vector<long> per_pass;
  for (int i = 0; i < 3; ++i) {
    g_news = 0;
    g_counting = true;
    (*enc)->forward(r->batch, ws);
    g_counting = false;
    per_pass.push_back(g_news);
  }
  EXPECT_EQ(per_pass[0], per_pass[1]) << folder;
  EXPECT_EQ(per_pass[1], per_pass[2]) << folder;
  return per_pass[2];
}

} // namespace

TEST(EncoderAllocations, NoneWithOpenBlas) {
  EXPECT_EQ(allocations_per_pass("bert-embed", nn::Precision::F32, nn::Backend::OpenBLAS), 0);
  EXPECT_EQ(allocations_per_pass("modernbert-seqcls", nn::Precision::F32, nn::Backend::OpenBLAS),
            0);
}

TEST(EncoderAllocations, ConstantWithOneDnn) {
  for (auto p : {nn::Precision::F32, nn::Precision::BF16, nn::Precision::INT8}) {
    long bert = allocations_per_pass("bert-embed", p, nn::Backend::OneDNN);
    long modern = allocations_per_pass("modernbert-seqcls", p, nn::Backend::OneDNN);
    std::cout << nn::precision_name(p) << ": " << bert << " / " << modern
              << " allocations per pass inside oneDNN (2 / 3 layers)\n";
    // Bounded by a few per GEMM call: 4 GEMMs a layer.
    EXPECT_LE(bert, 2 * 4 * 12);
    EXPECT_LE(modern, 3 * 4 * 12);
  }
}
