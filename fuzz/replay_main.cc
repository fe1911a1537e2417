// Replays a fuzz target over files without libFuzzer: the normal build's test for each target
// (fuzz/CMakeLists.txt) runs it over the seeds in fuzz/corpus/<target>/ and every input that
// once crashed it, in fuzz/regressions/<target>/. A crash, a failed FUZZ_CHECK or, in the
// sanitizer build, a sanitizer report fails the test.
// Usage: fuzz_replay_<target> DIR_OR_FILE...  (files whose names start with '.' are skipped)
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

namespace {

namespace fs = std::filesystem;

bool collect(const fs::path& p, std::vector<fs::path>& files) {
  std::error_code ec;
  if (fs::is_regular_file(p, ec)) {
    files.push_back(p);
    return true;
  }
  if (!fs::is_directory(p, ec)) {
    std::fprintf(stderr, "fuzz replay: %s: no such file or directory\n", p.c_str());
    return false;
  }
  std::vector<fs::path> found;
  for (const auto& entry : fs::directory_iterator(p, ec))
    if (entry.is_regular_file() && !entry.path().filename().string().starts_with("."))
      found.push_back(entry.path());
  std::sort(found.begin(), found.end());
  files.insert(files.end(), found.begin(), found.end());
  return !ec;
}

} // namespace

int main(int argc, char** argv) {
  std::vector<fs::path> files;
  for (int i = 1; i < argc; ++i)
    if (!collect(argv[i], files))
      return 1;
  if (files.empty()) {
    std::fprintf(stderr, "fuzz replay: no inputs\n");
    return 1;
  }
  for (const auto& f : files) {
    std::ifstream in(f, std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (!in.good() && !in.eof()) {
      std::fprintf(stderr, "fuzz replay: cannot read %s\n", f.c_str());
      return 1;
    }
    std::printf("%s\n", f.c_str());
    std::fflush(stdout);
    // A heap copy of exactly the input's size, as libFuzzer passes it, so AddressSanitizer sees
    // a read past the end.
    auto data = std::make_unique<uint8_t[]>(bytes.size());
    std::copy(bytes.begin(), bytes.end(), data.get());
    LLVMFuzzerTestOneInput(data.get(), bytes.size());
  }
  std::printf("fuzz replay: %zu inputs, no failure\n", files.size());
  return 0;
}
