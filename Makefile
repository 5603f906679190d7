# classifyd — build, test, benchmark and run.
#
#   make            build build/classifyd (installs missing Debian packages first)
#   make test       unit tests (release + ASan/UBSan), differential tests against PyTorch,
#                   CLI, daemon and browser tests; installs what it needs
#   make test-browser  the page at / in Debian's chromium (screenshots: build/artifacts/)
#   make test-deploy   Kubernetes manifest checks; 3 replicas behind HAProxy, one killed
#   make test-docker   the container image built and run with podman (debootstrap base)
#   make run        serve resnet50 and googlenet on 127.0.0.1:8080
#   make test-overload  the daemon at 3x its sustainable rate (part of make test)
#   make soak       mixed load with reloads for SOAK_MINUTES (default 10); report in build/soak/
#   make bench      engine latency/throughput (resnet50, googlenet, resnet18; batch 1 and 8)
#   make bench-decode  image decode + preprocess time per photo
#   make test-diff / test-cli / test-integration / test-systemd  one suite of make test
#   make bench-http the daemon end to end (wrk, open loop) vs the engine; start-up, memory
#   make bench-peers the engine against ONNX Runtime (npm, into build/peers) and PyTorch
#   make bench-nodes the engine against ONNX Runtime layer group by layer group, fastest
#                   and median per node (ResNet-50 batch 1; BENCH_NODES_ARGS for others)
#   make bench-phase the host's phases (cross-core reads, CPU speed, memory, steal) beside
#                   ResNet-50 batch-1 forwards, window by window (PHASE_WINDOWS, default 30)
#   make models     download official weights (checked) and export ONNX; offline: see models/
#   make check-asan the unit tests under AddressSanitizer + UBSan only
#   make test-abuse abusive clients and resource limits (release and ASan daemons)
#   make test-valgrind the daemon under Valgrind memcheck (build/vg: x86-64-v3)
#   make fuzz       libFuzzer targets (FUZZ_SECONDS each); make fuzz-smoke: a short run of each
#   make install    binary, config, systemd units, models folder (PREFIX, DESTDIR); make uninstall
#
# Layout: engine/ -> build/libcnn.a; server/ -> build/classifyd; tests/unit/ -> one
# Criterion binary; tests/tools/*.c, tests/bench/*.c -> one binary each. The ASan
# variant of everything lives under build/asan/, a Valgrind-friendly one under
# build/vg/. Sources are found by wildcard, so a new .c file needs no Makefile edit.

SHELL := /bin/bash
CC ?= gcc
ifeq ($(origin CC),default)
CC := gcc
endif
BUILD ?= build
ARCH ?= native
PYTHON ?= /usr/bin/python3
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
OPT := -O3 -march=$(ARCH) -g
SAN := -O1 -g -march=$(ARCH) -fsanitize=address,undefined -fno-omit-frame-pointer \
       -fno-sanitize-recover=undefined
CPPFLAGS_ALL = -Iengine -Iserver -I$(BUILD)/gen -D_GNU_SOURCE $(PKG_CFLAGS)
CFLAGS_ALL := -std=c17 $(WARN) -pthread
LDLIBS_ALL = $(PKG_LIBS) -lm -pthread

GEN_DIR := $(BUILD)/gen
ONNX_PROTO := /usr/include/onnx/onnx.proto
GEN_C := $(GEN_DIR)/onnx/onnx.pb-c.c
GEN_H := $(GEN_DIR)/onnx/onnx.pb-c.h
WEB_FILES := $(sort $(wildcard web/*))
GEN_WEB := $(GEN_DIR)/web_assets.h

ENGINE_SRCS := $(wildcard engine/*.c)
SERVER_SRCS := $(wildcard server/*.c)
UNIT_SRCS := $(wildcard tests/unit/*.c)
TOOL_SRCS := $(wildcard tests/tools/*.c)
BENCH_SRCS := $(wildcard tests/bench/*.c)
FUZZ_SRCS := $(wildcard tests/fuzz/*.c)

.PHONY: all deps deps-test test check-asan unit unit-asan bench run models clean \
        fuzz fuzz-smoke bench-decode bench-peers test-models test-diff test-cli test-integration \
        format install uninstall test-systemd test-browser test-deploy test-docker \
        test-integration-asan test-abuse test-valgrind test-overload soak
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

# ---- the browser page, embedded into the binary (server/web.c includes it) ----------------
$(GEN_WEB): scripts/embed_web.sh $(WEB_FILES)
	@mkdir -p $(GEN_DIR)
	scripts/embed_web.sh $@ $(WEB_FILES)

# ---- one build variant: $(1) = output dir, $(2) = compiler flags -----------------------
define VARIANT
$(1)/obj/%.o: %.c $(GEN_H) | $(DEPS_STAMP)
	@mkdir -p $$(@D)
	@$(if $(Q),echo "  CC      $$@")
	$(Q)$$(CC) $$(CFLAGS_ALL) $(2) $$(FILE_OPT) $$(CPPFLAGS_ALL) -MMD -MP -c $$< -o $$@

$(1)/obj/server/web.o $(1)/obj/tests/unit/test_web.o: $(GEN_WEB)

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
# For Valgrind, which does not decode AVX-512: the same code built for x86-64-v3 (AVX2).
VG := $(BUILD)/vg
VGOPT := -O1 -g -march=x86-64-v3
$(eval $(call VARIANT,$(VG),$(VGOPT)))

# The engine's SIMD paths differ by target (AVX-512, AVX2, neither) and the build host
# picks one with -march=native: `build-archs` compiles the engine and the unit tests for
# all three, so a change cannot break the paths this host does not run (session 11 moved
# to an AVX2 host and found a test that no longer built there).
ARCH_CHECKS := x86-64 x86-64-v3 x86-64-v4
$(foreach a,$(ARCH_CHECKS),$(eval $(call VARIANT,$(BUILD)/arch-$(a),-O1 -march=$(a))))
.PHONY: build-archs
build-archs: $(foreach a,$(ARCH_CHECKS),$(BUILD)/arch-$(a)/tests/unit)

# The sgemm micro-kernels at -O1 keep their accumulators in memory (the AVX2 one ran at 2.7
# GFLOP/s under ASan, 30x slower than at -O3, and a ResNet-50 forward took 2.7 s): the
# sanitizer and Valgrind builds compile that one file at -O2, still instrumented.
$(ASAN)/obj/engine/kern_sgemm.o $(VG)/obj/engine/kern_sgemm.o: FILE_OPT := -O2

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
UNIT_ENV = CNN_TEST_IMAGES=$(abspath $(TEST_IMAGES)) CNN_TEST_MODELS=$(abspath $(TEST_MODELS_DIR))

unit: $(BUILD)/tests/unit $(TEST_IMAGES)/.stamp $(TEST_MODELS_DIR)/resnet18.onnx \
      $(TEST_MODELS_DIR)/resnet50.onnx $(TEST_MODELS_DIR)/googlenet.onnx
	$(UNIT_ENV) $(BUILD)/tests/unit --jobs 2
unit-asan: $(ASAN)/tests/unit $(TEST_IMAGES)/.stamp $(TEST_MODELS_DIR)/resnet18.onnx \
           $(TEST_MODELS_DIR)/resnet50.onnx $(TEST_MODELS_DIR)/googlenet.onnx
	$(UNIT_ENV) ASAN_OPTIONS=detect_leaks=1 $(ASAN)/tests/unit --jobs 2
check-asan: unit-asan

TEST_ENV = BUILD=$(abspath $(BUILD)) MODELS=$(abspath $(TEST_MODELS_DIR)) PYTHON=$(PYTHON)

test-diff: $(TOOLS) $(TOOLS_ASAN) $(BUILD)/classifyd test-models
	$(TEST_ENV) $(PYTHON) tests/diff/run_all.py
test-cli: $(BUILD)/classifyd $(ASAN)/classifyd $(TOOLS_ASAN) test-models
	$(TEST_ENV) tests/cli/run.sh
test-integration: $(BUILD)/classifyd test-models
	$(TEST_ENV) tests/integration/run.sh
# The same suite against the ASan/UBSan daemon (leak check at each daemon's exit);
# reference predictions from the release CLI.
test-integration-asan: $(BUILD)/classifyd $(ASAN)/classifyd test-models
	$(TEST_ENV) CLASSIFYD=$(abspath $(ASAN))/classifyd CLI_CLASSIFYD=$(abspath $(BUILD))/classifyd \
	  tests/integration/run.sh

# Abusive clients and resource limits (tests/abuse), release then ASan/UBSan build.
test-abuse: $(BUILD)/classifyd $(ASAN)/classifyd $(TEST_MODELS_DIR)/resnet18.onnx \
            $(TEST_MODELS_DIR)/resnet50.onnx $(TEST_MODELS_DIR)/resnet152.onnx | $(DEPS_TEST_STAMP)
	$(TEST_ENV) tests/abuse/run.sh
	$(TEST_ENV) CLASSIFYD=$(abspath $(ASAN))/classifyd ASAN=1 tests/abuse/run.sh

# The daemon under Valgrind memcheck (tests/valgrind), built for x86-64-v3.
test-valgrind: $(VG)/classifyd | $(DEPS_TEST_STAMP)
	$(TEST_ENV) CLASSIFYD=$(abspath $(VG))/classifyd tests/valgrind/run.sh

# Overload (issue 8): 3x the sustainable rate for 15 s; 503s fast, deadlines kept, RSS bounded,
# latency back to normal afterwards; then RSS across repeated reloads. About a minute.
test-overload: $(BUILD)/classifyd $(TEST_MODELS_DIR)/resnet18.onnx $(TEST_MODELS_DIR)/googlenet.onnx
	$(TEST_ENV) tests/overload/run.sh

# Soak (not part of `make test`): a mixed load for SOAK_MINUTES with SIGHUP reloads; report in
# $(BUILD)/soak/. Run it niced on a shared machine: nice -n 19 make soak SOAK_MINUTES=30
SOAK_MINUTES ?= 10
SOAK_WINDOW_MINUTES ?= 10
SOAK_RATE ?= 2
soak: $(BUILD)/classifyd $(TEST_MODELS_DIR)/resnet18.onnx $(TEST_MODELS_DIR)/googlenet.onnx \
      $(TEST_MODELS_DIR)/resnet50.onnx
	$(TEST_ENV) $(PYTHON) tests/soak/soak.py --minutes $(SOAK_MINUTES) \
	  --window-minutes $(SOAK_WINDOW_MINUTES) --rate $(SOAK_RATE) --out $(abspath $(BUILD))/soak

test-systemd: $(BUILD)/classifyd $(ASAN)/classifyd test-models
	$(TEST_ENV) tests/systemd/run.sh

# Deployment: docker/kubernetes.yaml checked, three replicas behind HAProxy (docker/haproxy.cfg).
test-deploy: $(BUILD)/classifyd $(TEST_MODELS_DIR)/resnet18.onnx $(TEST_MODELS_DIR)/resnet50.onnx | $(DEPS_TEST_STAMP)
	$(TEST_ENV) tests/deploy/run.sh

# The container image (docker/Dockerfile) built, run, probed and stopped with podman.
test-docker: $(BUILD)/classifyd $(TEST_MODELS_DIR)/resnet18.onnx | $(DEPS_TEST_STAMP)
	$(TEST_ENV) tests/docker/run.sh

# Browser test of the page: Debian's chromium driven by playwright-core (npm, into
# build/node, only when missing; it never downloads a browser).
# 1.61 is the newest release that still runs on Debian 12's Node.js 18.
NODE_DIR := $(BUILD)/node
PLAYWRIGHT_VERSION := 1.61.1
PLAYWRIGHT := $(NODE_DIR)/.playwright-core-$(PLAYWRIGHT_VERSION)
$(PLAYWRIGHT): | $(DEPS_TEST_STAMP)
	@mkdir -p $(NODE_DIR)
	PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm install --prefix $(NODE_DIR) --no-audit --no-fund \
	  --no-save playwright-core@$(PLAYWRIGHT_VERSION)
	@touch $@
test-browser: $(BUILD)/classifyd $(PLAYWRIGHT) $(TEST_MODELS_DIR)/resnet18.onnx $(TEST_MODELS_DIR)/googlenet.onnx
	$(TEST_ENV) NODE_DIR=$(abspath $(NODE_DIR)) tests/browser/run.sh

test: $(DEPS_TEST_STAMP)
	$(MAKE) unit unit-asan
	$(MAKE) build-archs
	$(MAKE) fuzz-smoke
	$(MAKE) test-diff
	$(MAKE) test-cli
	@if [ -x tests/integration/run.sh ]; then $(MAKE) test-integration; fi
	$(MAKE) test-integration-asan
	$(MAKE) test-abuse
	$(MAKE) test-valgrind
	$(MAKE) test-overload
	$(MAKE) test-systemd
	$(MAKE) test-browser
	$(MAKE) test-deploy
	$(MAKE) test-docker
	@echo "make test: all suites passed"

# ---- benchmarks, run, models, fuzz ---------------------------------------------------------
bench: $(BENCHES) test-models
	$(BUILD)/bench/bench_engine --models $(TEST_MODELS_DIR) --threads 2

# The daemon over loopback (wrk + an open-loop generator) beside the engine's own
# batch-8 throughput; start-up time and memory. About 2-3 minutes; not part of `make test`.
.PHONY: bench-http
bench-http: $(BUILD)/classifyd $(BUILD)/bench/bench_engine $(TEST_MODELS_DIR)/resnet50.onnx | $(DEPS_TEST_STAMP)
	$(PYTHON) tests/bench/bench_http.py --build $(BUILD) --models $(TEST_MODELS_DIR)

# ONNX Runtime's CPU build ships inside the npm package; its install script only
# fetches extras (and fails offline), hence --ignore-scripts. Installed once.
PEERS_DIR := $(BUILD)/peers
ORT_VERSION := 1.30.0
ORT_PACKAGE := $(PEERS_DIR)/node_modules/onnxruntime-node/package.json
$(ORT_PACKAGE):
	npm install --prefix $(PEERS_DIR) --ignore-scripts --no-audit --no-fund \
	  onnxruntime-node@$(ORT_VERSION)

bench-peers: $(BUILD)/bench/bench_engine test-models $(ORT_PACKAGE)
	$(PYTHON) tests/bench/peers.py --build $(BUILD) --models $(TEST_MODELS_DIR) --peers $(PEERS_DIR)

# Per-node profiles of both engines in alternating rounds (tests/bench/nodes.py), ~2 min.
BENCH_NODES_ARGS ?=
.PHONY: bench-nodes
bench-nodes: $(BUILD)/bench/bench_engine test-models $(ORT_PACKAGE)
	$(PYTHON) tests/bench/nodes.py --build $(BUILD) --models $(TEST_MODELS_DIR) \
	  --peers $(PEERS_DIR) $(BENCH_NODES_ARGS)

# What the host is doing while the engine runs: per window of about a second, a cross-
# core read, each CPU's speed, memory bandwidth and steal time, beside batch-1 forwards;
# then the forwards of the windows with slow cross-core reads against the others.
PHASE_WINDOWS ?= 30
.PHONY: bench-phase
bench-phase: $(BUILD)/bench/bench_phase $(TEST_MODELS_DIR)/resnet50.onnx
	$(BUILD)/bench/bench_phase --model $(TEST_MODELS_DIR)/resnet50.onnx --threads 2 \
	  --windows $(PHASE_WINDOWS)

bench-decode: $(BUILD)/bench/bench_decode
	$(BUILD)/bench/bench_decode ../shared/data

# make run: official weights (models/resnet50.onnx, models/googlenet.onnx; fetched and
# converted by models/fetch.py when they are missing and the download works), else
# calibrated random-weight exports, said plainly at start-up.
LISTEN ?= 127.0.0.1:8080
RUN_ARCHS := resnet50 googlenet
RUN_RANDOM := $(patsubst %,$(TEST_MODELS_DIR)/%.onnx,$(RUN_ARCHS))
run: $(BUILD)/classifyd | $(DEPS_TEST_STAMP)
	@missing=0; for a in $(RUN_ARCHS); do [ -f models/$$a.onnx ] || missing=1; done; \
	if [ $$missing = 1 ]; then $(PYTHON) models/fetch.py --dir models $(addprefix --arch ,$(RUN_ARCHS)) || true; fi
	@if [ -f models/resnet50.onnx ] && [ -f models/googlenet.onnx ]; then \
	  set -x; exec $(BUILD)/classifyd --listen $(LISTEN) $(foreach a,$(RUN_ARCHS),--model $(a)=models/$(a).onnx); \
	else \
	  $(MAKE) --no-print-directory $(RUN_RANDOM) && \
	  echo "make run: official weights not available; serving RANDOM-WEIGHT models: their predictions mean nothing" >&2 && \
	  set -x && exec $(BUILD)/classifyd --listen $(LISTEN) $(foreach a,$(RUN_ARCHS),--model $(a)=$(TEST_MODELS_DIR)/$(a).onnx); \
	fi

models: | $(DEPS_TEST_STAMP)
	$(PYTHON) models/fetch.py --dir models

# libFuzzer targets: tests/fuzz/NAME.c -> $(BUILD)/fuzz/NAME, linked with the engine, the
# server without main.c, and the shared harness code in tests/fuzz/lib/. Everything is
# compiled once into $(BUILD)/fuzz/obj with coverage + ASan + UBSan. Optional per-target
# dictionary tests/fuzz/NAME.dict, seeds tests/fuzz/corpus/NAME, past crashes
# tests/fuzz/regress/NAME (replayed by fuzz-smoke, so by make test).
FUZZ_CC := clang
# -march as the build, so the fuzzers run the same SIMD code paths (e.g. the AVX2 resampler).
FUZZ_SAN := -g -O1 -march=$(ARCH) -fsanitize=address,undefined -fno-sanitize-recover=undefined
FUZZ_DIR := $(BUILD)/fuzz
FUZZ_LIB_SRCS := $(wildcard tests/fuzz/lib/*.c)
FUZZ_LINKED := $(ENGINE_SRCS) $(filter-out server/main.c,$(SERVER_SRCS)) $(FUZZ_LIB_SRCS)
FUZZ_OBJS := $(patsubst %.c,$(FUZZ_DIR)/obj/%.o,$(FUZZ_LINKED)) $(FUZZ_DIR)/obj/gen/onnx.pb-c.o
FUZZERS := $(patsubst tests/fuzz/%.c,$(FUZZ_DIR)/%,$(FUZZ_SRCS))
$(FUZZ_DIR)/obj/%.o: %.c $(GEN_H) | $(DEPS_TEST_STAMP)
	@mkdir -p $(@D)
	@$(if $(Q),echo "  CC      $@")
	$(Q)$(FUZZ_CC) -std=c17 $(FUZZ_SAN) -fsanitize=fuzzer-no-link -pthread $(CPPFLAGS_ALL) \
	  -Itests/fuzz/lib -w -MMD -MP -c $< -o $@
# The harness code itself is held to the project's warnings (shorter stem: this rule wins).
$(FUZZ_DIR)/obj/tests/fuzz/%.o: tests/fuzz/%.c $(GEN_H) | $(DEPS_TEST_STAMP)
	@mkdir -p $(@D)
	@$(if $(Q),echo "  CC      $@")
	$(Q)$(FUZZ_CC) -std=c17 $(WARN) $(FUZZ_SAN) -fsanitize=fuzzer-no-link -pthread $(CPPFLAGS_ALL) \
	  -Itests/fuzz/lib -MMD -MP -c $< -o $@
$(FUZZ_DIR)/obj/server/web.o: $(GEN_WEB)
$(FUZZ_DIR)/obj/gen/onnx.pb-c.o: $(GEN_C) | $(DEPS_TEST_STAMP)
	@mkdir -p $(@D)
	$(Q)$(FUZZ_CC) -std=c17 $(FUZZ_SAN) -fsanitize=fuzzer-no-link $(CPPFLAGS_ALL) -w -c $< -o $@
$(FUZZ_DIR)/%: $(FUZZ_DIR)/obj/tests/fuzz/%.o $(FUZZ_OBJS)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(FUZZ_CC) $(FUZZ_SAN) -fsanitize=fuzzer -o $@ $^ $(LDLIBS_ALL)
.SECONDARY: $(FUZZ_OBJS) $(patsubst %.c,$(FUZZ_DIR)/obj/%.o,$(FUZZ_SRCS))
-include $(patsubst %.c,$(FUZZ_DIR)/obj/%.d,$(FUZZ_LINKED) $(FUZZ_SRCS))

# All targets (or FUZZ_ONLY="fuzz_onnx ...") at once, each for FUZZ_SECONDS, niced; logs in $(BUILD)/fuzzlogs/NAME.log, the
# grown corpora in $(BUILD)/corpus/NAME; any crash input lands in $(BUILD)/fuzzlogs/.
FUZZ_SECONDS ?= 60
FUZZ_LOGS := $(BUILD)/fuzzlogs
FUZZ_ONLY ?=
FUZZ_RUN = $(if $(FUZZ_ONLY),$(addprefix $(FUZZ_DIR)/,$(FUZZ_ONLY)),$(FUZZERS))
fuzz: $(FUZZERS)
	@mkdir -p $(FUZZ_LOGS); pids=; \
	for f in $(FUZZ_RUN); do n=$$(basename $$f); mkdir -p $(BUILD)/corpus/$$n tests/fuzz/regress/$$n; \
	  d=; [ -f tests/fuzz/$$n.dict ] && d=-dict=tests/fuzz/$$n.dict; \
	  FUZZ_TINY_ONNX=$(abspath tests/fuzz/tiny.onnx) nice -n 19 $$f -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 -rss_limit_mb=2048 $$d \
	    -artifact_prefix=$(FUZZ_LOGS)/$$n- $(BUILD)/corpus/$$n tests/fuzz/corpus/$$n \
	    tests/fuzz/regress/$$n > $(FUZZ_LOGS)/$$n.log 2>&1 & pids="$$pids $$!"; done; \
	fail=0; for p in $$pids; do wait $$p || fail=1; done; \
	for f in $(FUZZ_RUN); do n=$$(basename $$f); echo "== $$n"; \
	  grep -E '^(Done|stat::)' $(FUZZ_LOGS)/$$n.log; grep -E '#[0-9]+ *DONE' $(FUZZ_LOGS)/$$n.log; done; \
	[ $$fail = 0 ] || { echo "fuzz: a target failed (see $(FUZZ_LOGS))"; exit 1; }

# Each fuzzer for FUZZ_SMOKE_SECONDS, starting from its seed corpus plus the
# regression inputs of past crashes (all replayed first; any crash fails).
FUZZ_SMOKE_SECONDS ?= 15
fuzz-smoke: $(FUZZERS)
	@for f in $(FUZZERS); do n=$$(basename $$f); mkdir -p $(BUILD)/corpus-smoke/$$n tests/fuzz/regress/$$n; \
	  d=; [ -f tests/fuzz/$$n.dict ] && d=-dict=tests/fuzz/$$n.dict; \
	  FUZZ_TINY_ONNX=$(abspath tests/fuzz/tiny.onnx) $$f -max_total_time=$(FUZZ_SMOKE_SECONDS) -rss_limit_mb=2048 -print_final_stats=1 $$d \
	    -artifact_prefix=$(BUILD)/corpus-smoke/$$n- \
	    $(BUILD)/corpus-smoke/$$n tests/fuzz/corpus/$$n tests/fuzz/regress/$$n 2>&1 | tail -n 12; \
	  [ $${PIPESTATUS[0]} -eq 0 ] || { echo "fuzz-smoke: $$n failed"; exit 1; }; done

# ---- install ----------------------------------------------------------------------------
# The units and the config name their paths for PREFIX=/usr/local; install rewrites them.
# An existing config is never overwritten, and uninstall keeps one that was edited.
PREFIX ?= /usr/local
BINDIR ?= $(PREFIX)/bin
SYSCONFDIR ?= $(PREFIX)/etc
UNITDIR ?= $(PREFIX)/lib/systemd/system
DATADIR ?= $(PREFIX)/share/classifyd
DOCDIR ?= $(PREFIX)/share/doc/classifyd
INSTALL_MODELS := $(wildcard models/*.onnx)
INSTALL_SED = -e 's|/usr/local/bin|$(BINDIR)|g' -e 's|/usr/local/etc|$(SYSCONFDIR)|g' \
              -e 's|/usr/local/share/doc/classifyd|$(DOCDIR)|g' -e 's|^path = models/|path = $(DATADIR)/models/|'
CONF_DST = $(DESTDIR)$(SYSCONFDIR)/classifyd/classifyd.conf
install: $(BUILD)/classifyd
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(SYSCONFDIR)/classifyd $(DESTDIR)$(UNITDIR) \
	  $(DESTDIR)$(DATADIR)/models $(DESTDIR)$(DOCDIR)
	install -m 755 $(BUILD)/classifyd $(DESTDIR)$(BINDIR)/classifyd
	for u in classifyd.service classifyd.socket; do sed $(INSTALL_SED) systemd/$$u > $(BUILD)/$$u && \
	  install -m 644 $(BUILD)/$$u $(DESTDIR)$(UNITDIR)/$$u || exit 1; done
	sed $(INSTALL_SED) conf/classifyd.conf > $(BUILD)/classifyd.conf
	@if [ -e $(CONF_DST) ]; then echo "install: keeping existing $(CONF_DST)"; \
	else install -m 644 $(BUILD)/classifyd.conf $(CONF_DST); fi
	install -m 644 README.md $(DESTDIR)$(DOCDIR)/README.md
	$(if $(INSTALL_MODELS),install -m 644 $(INSTALL_MODELS) $(DESTDIR)$(DATADIR)/models/)
	@echo "installed; models go in $(DATADIR)/models (see $(SYSCONFDIR)/classifyd/classifyd.conf)"

uninstall:
	rm -f $(DESTDIR)$(BINDIR)/classifyd $(DESTDIR)$(UNITDIR)/classifyd.service \
	  $(DESTDIR)$(UNITDIR)/classifyd.socket $(DESTDIR)$(DOCDIR)/README.md \
	  $(addprefix $(DESTDIR)$(DATADIR)/models/,$(notdir $(INSTALL_MODELS)))
	@sed $(INSTALL_SED) conf/classifyd.conf | if cmp -s - $(CONF_DST); then rm -f $(CONF_DST); \
	elif [ -e $(CONF_DST) ]; then echo "uninstall: keeping edited $(CONF_DST)"; fi
	-rmdir $(DESTDIR)$(DATADIR)/models $(DESTDIR)$(DATADIR) $(DESTDIR)$(DOCDIR) \
	  $(DESTDIR)$(SYSCONFDIR)/classifyd 2>/dev/null

format:
	clang-format -i engine/*.[ch] server/*.[ch] tests/*/*.c

clean:
	rm -rf $(BUILD)
