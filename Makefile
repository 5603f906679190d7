# classifyd — build, test, benchmark and run.
#
#   make            build build/classifyd (installs missing Debian packages first)
#   make test       unit tests (release + ASan/UBSan), differential tests against PyTorch,
#                   CLI and daemon tests; installs what it needs
#   make run        serve resnet50 and googlenet on 127.0.0.1:8080
#   make bench      engine latency/throughput (resnet50, googlenet, resnet18; batch 1 and 8)
#   make bench-peers the engine against ONNX Runtime (npm, into build/peers) and PyTorch
#   make models     download official weights (checked) and export ONNX; offline: see models/
#   make check-asan the unit tests under AddressSanitizer + UBSan only
#   make fuzz       libFuzzer targets (FUZZ_SECONDS each)
#
# Layout: engine/ -> build/libcnn.a; server/ -> build/classifyd; tests/unit/ -> one
# Criterion binary; tests/tools/*.c, tests/bench/*.c -> one binary each. The ASan
# variant of everything lives under build/asan/. Sources are found by wildcard, so a
# new .c file needs no Makefile edit.

SHELL := /bin/bash
CC ?= gcc
ifeq ($(origin CC),default)
CC := gcc
endif
BUILD ?= build
ARCH ?= native
PYTHON ?= /usr/bin/python3
FUZZ_SECONDS ?= 60
V ?= 0
ifeq ($(V),0)
Q := @
else
Q :=
endif

PKGS := libmicrohttpd jansson openblas libturbojpeg libuv libpng libwebp inih \
        libprotobuf-c libsystemd
# Evaluated lazily (after `deps` has installed the packages), then memoized.
PKG_CFLAGS = $(eval PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS)))$(PKG_CFLAGS)
PKG_LIBS = $(eval PKG_LIBS := $(shell pkg-config --libs $(PKGS)))$(PKG_LIBS)
CRIT_LIBS = $(eval CRIT_LIBS := $(shell pkg-config --libs criterion))$(CRIT_LIBS)

WARN := -Wall -Wextra -Werror -Wshadow -Wno-unused-parameter
OPT := -O2 -march=$(ARCH) -g
SAN := -O1 -g -march=$(ARCH) -fsanitize=address,undefined -fno-omit-frame-pointer \
       -fno-sanitize-recover=undefined
CPPFLAGS_ALL = -Iengine -Iserver -I$(BUILD)/gen -D_GNU_SOURCE $(PKG_CFLAGS)
CFLAGS_ALL := -std=c17 $(WARN) -pthread
LDLIBS_ALL = $(PKG_LIBS) -lm -pthread

GEN_DIR := $(BUILD)/gen
ONNX_PROTO := /usr/include/onnx/onnx.proto
GEN_C := $(GEN_DIR)/onnx/onnx.pb-c.c
GEN_H := $(GEN_DIR)/onnx/onnx.pb-c.h

ENGINE_SRCS := $(wildcard engine/*.c)
SERVER_SRCS := $(wildcard server/*.c)
UNIT_SRCS := $(wildcard tests/unit/*.c)
TOOL_SRCS := $(wildcard tests/tools/*.c)
BENCH_SRCS := $(wildcard tests/bench/*.c)
FUZZ_SRCS := $(wildcard tests/fuzz/*.c)

.PHONY: all deps deps-test test check-asan unit unit-asan bench run models clean \
        fuzz fuzz-smoke bench-decode bench-peers test-models test-diff test-cli test-integration format
.DEFAULT_GOAL := all

# ---- dependencies -----------------------------------------------------------------
DEPS_STAMP := $(BUILD)/.deps-build
DEPS_TEST_STAMP := $(BUILD)/.deps-test
deps:
	@scripts/deps.sh build
deps-test:
	@scripts/deps.sh test
$(DEPS_STAMP): scripts/deps.sh
	@mkdir -p $(BUILD) && scripts/deps.sh build && touch $@
$(DEPS_TEST_STAMP): scripts/deps.sh
	@mkdir -p $(BUILD) && scripts/deps.sh test && touch $@

# ---- generated ONNX decoders (protoc-c from the system schema) ------------------------
$(GEN_C) $(GEN_H) &: $(ONNX_PROTO) | $(DEPS_STAMP)
	@mkdir -p $(GEN_DIR)
	protoc-c --c_out=$(GEN_DIR) --proto_path=/usr/include $(ONNX_PROTO)

# ---- one build variant: $(1) = output dir, $(2) = compiler flags -----------------------
define VARIANT
$(1)/obj/%.o: %.c $(GEN_H) | $(DEPS_STAMP)
	@mkdir -p $$(@D)
	@$(if $(Q),echo "  CC      $$@")
	$(Q)$$(CC) $$(CFLAGS_ALL) $(2) $$(CPPFLAGS_ALL) -MMD -MP -c $$< -o $$@

$(1)/obj/gen/onnx.pb-c.o: $(GEN_C) | $(DEPS_STAMP)
	@mkdir -p $$(@D)
	@$(if $(Q),echo "  CC      $$@")
	$(Q)$$(CC) -std=c17 $(2) $$(CPPFLAGS_ALL) -w -c $$< -o $$@

$(1)/libcnn.a: $(patsubst %.c,$(1)/obj/%.o,$(ENGINE_SRCS)) $(1)/obj/gen/onnx.pb-c.o
	@rm -f $$@
	@$(if $(Q),echo "  AR      $$@")
	$(Q)ar rcs $$@ $$^

$(1)/classifyd: $(patsubst %.c,$(1)/obj/%.o,$(SERVER_SRCS)) $(1)/libcnn.a
	@$(if $(Q),echo "  LD      $$@")
	$(Q)$$(CC) $(2) -o $$@ $$^ $$(LDLIBS_ALL)

$(1)/tests/unit: $(patsubst %.c,$(1)/obj/%.o,$(UNIT_SRCS)) $(1)/libcnn.a | $(DEPS_TEST_STAMP)
	@mkdir -p $$(@D)
	@$(if $(Q),echo "  LD      $$@")
	$(Q)$$(CC) $(2) -o $$@ $$^ $$(CRIT_LIBS) $$(LDLIBS_ALL)

$(1)/tools/%: $(1)/obj/tests/tools/%.o $(1)/libcnn.a
	@mkdir -p $$(@D)
	@$(if $(Q),echo "  LD      $$@")
	$(Q)$$(CC) $(2) -o $$@ $$^ $$(LDLIBS_ALL)

$(1)/bench/%: $(1)/obj/tests/bench/%.o $(1)/libcnn.a
	@mkdir -p $$(@D)
	@$(if $(Q),echo "  LD      $$@")
	$(Q)$$(CC) $(2) -o $$@ $$^ $$(LDLIBS_ALL)

-include $(patsubst %.c,$(1)/obj/%.d,$(ENGINE_SRCS) $(SERVER_SRCS) $(UNIT_SRCS) $(TOOL_SRCS) $(BENCH_SRCS))
endef

ASAN := $(BUILD)/asan
$(eval $(call VARIANT,$(BUILD),$(OPT)))
$(eval $(call VARIANT,$(ASAN),$(SAN)))

TOOLS := $(patsubst tests/tools/%.c,$(BUILD)/tools/%,$(TOOL_SRCS))
TOOLS_ASAN := $(patsubst tests/tools/%.c,$(ASAN)/tools/%,$(TOOL_SRCS))
BENCHES := $(patsubst tests/bench/%.c,$(BUILD)/bench/%,$(BENCH_SRCS))

all: $(BUILD)/classifyd

# ---- tests ---------------------------------------------------------------------------
# Test models: calibrated random-weight exports, deterministic, cached in build/models.
TEST_ARCHS := resnet18 resnet34 resnet50 resnet101 resnet152 googlenet
TEST_MODELS_DIR := $(BUILD)/models
TEST_MODELS := $(patsubst %,$(TEST_MODELS_DIR)/%.onnx,$(TEST_ARCHS))
$(TEST_MODELS_DIR)/%.onnx: models/export.py | $(DEPS_TEST_STAMP)
	@mkdir -p $(@D)
	$(PYTHON) models/export.py --arch $* --random 1 --out $@
test-models: $(TEST_MODELS)

# Image-intake test inputs, generated with PIL (tests/image/make_inputs.py).
TEST_IMAGES := $(BUILD)/test-images
$(TEST_IMAGES)/.stamp: tests/image/make_inputs.py | $(DEPS_TEST_STAMP)
	@rm -rf $(TEST_IMAGES) && mkdir -p $(TEST_IMAGES)
	$(PYTHON) tests/image/make_inputs.py $(TEST_IMAGES) && touch $@
UNIT_ENV = CNN_TEST_IMAGES=$(abspath $(TEST_IMAGES))

unit: $(BUILD)/tests/unit $(TEST_IMAGES)/.stamp
	$(UNIT_ENV) $(BUILD)/tests/unit --jobs 2
unit-asan: $(ASAN)/tests/unit $(TEST_IMAGES)/.stamp
	$(UNIT_ENV) ASAN_OPTIONS=detect_leaks=1 $(ASAN)/tests/unit --jobs 2
check-asan: unit-asan

TEST_ENV = BUILD=$(abspath $(BUILD)) MODELS=$(abspath $(TEST_MODELS_DIR)) PYTHON=$(PYTHON)

test-diff: $(TOOLS) $(TOOLS_ASAN) $(BUILD)/classifyd test-models
	$(TEST_ENV) $(PYTHON) tests/diff/run_all.py
test-cli: $(BUILD)/classifyd $(ASAN)/classifyd $(TOOLS_ASAN) test-models
	$(TEST_ENV) tests/cli/run.sh
test-integration: $(BUILD)/classifyd test-models
	$(TEST_ENV) tests/integration/run.sh

test: $(DEPS_TEST_STAMP)
	$(MAKE) unit unit-asan
	$(MAKE) fuzz-smoke
	$(MAKE) test-diff
	$(MAKE) test-cli
	@if [ -x tests/integration/run.sh ]; then $(MAKE) test-integration; fi
	@echo "make test: all suites passed"

# ---- benchmarks, run, models, fuzz ---------------------------------------------------------
bench: $(BENCHES) test-models
	$(BUILD)/bench/bench_engine --models $(TEST_MODELS_DIR) --threads 2

# ONNX Runtime's CPU build ships inside the npm package; its install script only
# fetches extras (and fails offline), hence --ignore-scripts. Installed once.
PEERS_DIR := $(BUILD)/peers
ORT_VERSION := 1.30.0
bench-peers: $(BUILD)/bench/bench_engine test-models
	@test -f $(PEERS_DIR)/node_modules/onnxruntime-node/package.json || \
	  npm install --prefix $(PEERS_DIR) --ignore-scripts --no-audit --no-fund \
	    onnxruntime-node@$(ORT_VERSION)
	$(PYTHON) tests/bench/peers.py --build $(BUILD) --models $(TEST_MODELS_DIR) --peers $(PEERS_DIR)

bench-decode: $(BUILD)/bench/bench_decode
	$(BUILD)/bench/bench_decode ../shared/data

# make run: official weights when models/resnet50.onnx and models/googlenet.onnx exist
# (make models), else calibrated random-weight exports, said plainly at start-up.
LISTEN ?= 127.0.0.1:8080
RUN_OFFICIAL := $(and $(wildcard models/resnet50.onnx),$(wildcard models/googlenet.onnx))
RUN_MODELS := $(if $(RUN_OFFICIAL),models/resnet50.onnx models/googlenet.onnx,\
              $(TEST_MODELS_DIR)/resnet50.onnx $(TEST_MODELS_DIR)/googlenet.onnx)
run: $(BUILD)/classifyd $(RUN_MODELS)
	@$(if $(RUN_OFFICIAL),true,echo "make run: official weights not found (make models);" \
	  "serving RANDOM-WEIGHT models: their predictions mean nothing" >&2)
	$(BUILD)/classifyd --listen $(LISTEN) $(foreach m,$(RUN_MODELS),--model $(basename $(notdir $(m)))=$(m))

models: | $(DEPS_TEST_STAMP)
	$(PYTHON) models/fetch.py --dir models

FUZZ_CC := clang
FUZZ_FLAGS := -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined
FUZZERS := $(patsubst tests/fuzz/%.c,$(BUILD)/fuzz/%,$(FUZZ_SRCS))
$(BUILD)/fuzz/%: tests/fuzz/%.c $(ENGINE_SRCS) $(GEN_C) | $(DEPS_TEST_STAMP)
	@mkdir -p $(@D)
	$(FUZZ_CC) -std=c17 $(FUZZ_FLAGS) $(CPPFLAGS_ALL) -w -o $@ $< $(ENGINE_SRCS) $(GEN_C) $(LDLIBS_ALL)
fuzz: $(FUZZERS)
	@for f in $(FUZZERS); do n=$$(basename $$f); mkdir -p $(BUILD)/corpus/$$n; \
	  $$f -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 $(BUILD)/corpus/$$n tests/fuzz/corpus/$$n || exit 1; done

# Each fuzzer for FUZZ_SMOKE_SECONDS, starting from its seed corpus plus the
# regression inputs of past crashes (all replayed first; any crash fails).
FUZZ_SMOKE_SECONDS ?= 20
fuzz-smoke: $(FUZZERS)
	@for f in $(FUZZERS); do n=$$(basename $$f); mkdir -p $(BUILD)/corpus-smoke/$$n tests/fuzz/regress/$$n; \
	  $$f -max_total_time=$(FUZZ_SMOKE_SECONDS) -rss_limit_mb=2048 -print_final_stats=1 \
	    $(BUILD)/corpus-smoke/$$n tests/fuzz/corpus/$$n tests/fuzz/regress/$$n 2>&1 | tail -n 12; \
	  [ $${PIPESTATUS[0]} -eq 0 ] || { echo "fuzz-smoke: $$n failed"; exit 1; }; done

format:
	clang-format -i engine/*.[ch] server/*.[ch] tests/*/*.c

clean:
	rm -rf $(BUILD)
