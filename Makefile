# The front door. `make demo` and `make test` install what they need first (idempotent).
BUILD_DIR ?= build
JOBS ?= 2
PORT ?= 8801
ADMIN_PORT ?= 8802
CMAKE_FLAGS ?=

.PHONY: all deps configure build demo test bench format format-check clean

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

bench: deps build
	@bash bench/gateway_bench.sh

format:
	@clang-format -i $$(git ls-files '*.cc' '*.h')

format-check:
	@clang-format --dry-run --Werror $$(git ls-files '*.cc' '*.h')

clean:
	@rm -rf $(BUILD_DIR)
