// config::parse_config: YAML text -> Config (the file an operator writes, and what the admin API's
// reload reads). Input: the YAML text.
// Checks: every failure is an error value with a message; nothing escapes as an exception (an
// uncaught one ends the process, which libFuzzer reports as a crash).
#include "config/config.h"
#include "fuzz_util.h"

using namespace semrouter;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto config = config::parse_config(fuzz::as_text(data, size));
  if (!config)
    FUZZ_CHECK(!config.error().message.empty());
  return 0;
}
