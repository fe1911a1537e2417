# The front door. `make demo` and `make test` install what they need first (idempotent).
BUILD_DIR ?= build
JOBS ?= 2
PORT ?= 8801
ADMIN_PORT ?= 8802
CMAKE_FLAGS ?=
FUZZ_SECONDS ?= 60

.PHONY: all deps configure build demo test sanitize tsan fuzz soak bench bench-cache bench-encoders bench-tls bench-translate format format-check clean

all: build

deps:
	@bash scripts/install-deps.sh

configure:
	@if [ ! -f $(BUILD_DIR)/build.ninja ]; then \
	  cmake -S . -B $(BUILD_DIR) -G Ninja -DCMAKE_BUILD_TYPE=Release $(CMAKE_FLAGS); fi

build: configure
	@cmake --build $(BUILD_DIR) -j $(JOBS)
	@echo "built: $(BUILD_DIR)/bin/semrouter"

demo: deps build
	@PORT=$(PORT) ADMIN_PORT=$(ADMIN_PORT) SEMROUTER_BIN=$(BUILD_DIR)/bin/semrouter \
	  MOCK_UPSTREAM_BIN=$(BUILD_DIR)/bin/mock-upstream bash scripts/demo.sh

test: deps build
	@cd $(BUILD_DIR) && ctest --output-on-failure -j $(JOBS)

# The whole suite on an ASan + UBSan build; fails on any sanitizer report, including those of
# servers the integration tests start and stop (their logs are kept and searched).
sanitize: deps
	@if [ ! -f build-asan/build.ninja ]; then \
	  cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSEMROUTER_BUILD_BENCH=OFF \
	    -DSEMROUTER_SANITIZE=ON; fi
	@cmake --build build-asan -j $(JOBS)
	@bash scripts/sanitize-check.sh build-asan

# The memory cache's concurrent paths under ThreadSanitizer (scripts/tsan-cache.sh, ~1 minute).
tsan: deps
	@bash scripts/tsan-cache.sh

# libFuzzer targets (fuzz/) on a clang ASan + UBSan build in build-fuzz, each run FUZZ_SECONDS,
# $(JOBS) at a time; fails on any crash and prints the input that did it (fuzz/README.md).
fuzz: deps
	@FUZZ_SECONDS=$(FUZZ_SECONDS) FUZZ_JOBS=$(JOBS) bash scripts/fuzz.sh

# 10 minutes of load with upstream faults every 3 s and a config reload every 30 s: nothing lost,
# RSS and descriptors flat (the curve goes to soak-rss.csv). CI runs a 60 s version.
soak: deps build
	@node tests/integration/soak.mjs --duration-s $${SOAK_SECONDS:-600} --reload-s 30 --clients 8

bench: deps build
	@bash bench/gateway_bench.sh

# Semantic cache: lookup latency and memory, hit vs miss through the gateway (docs/benchmarks.md).
bench-cache: deps build
	@bash bench/cache_bench.sh

# BERT-base / ModernBERT-base encoders, semrouter vs PyTorch on the same weights (docs/benchmarks.md).
bench-encoders: deps build
	@bash bench/encoder_bench.sh

# https:// against http:// upstreams through one nginx, router and nginx alone (docs/benchmarks.md).
bench-tls: deps build
	@bash bench/tls_bench.sh

# Anthropic Messages / Responses translation: per call, and end to end against chat (docs/benchmarks.md).
bench-translate: deps build
	@bash bench/translate_bench.sh

format:
	@clang-format -i $$(git ls-files --cached --others --exclude-standard '*.cc' '*.h')

format-check:
	@clang-format --dry-run --Werror $$(git ls-files --cached --others --exclude-standard '*.cc' '*.h')

clean:
	@rm -rf $(BUILD_DIR) build-asan build-fuzz build-tsan
