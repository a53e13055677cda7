# zkd - a ZooKeeper-compatible coordination server.
#
#   make run     install what is missing, build, start a standalone server (conf/zoo.cfg)
#   make test    install, build, run unit + integration tests
#   make asan    the same tests with AddressSanitizer + UBSan (+ conformance)
#   make tsan    integration + conformance against a ThreadSanitizer zkd
#   make conformance  ../shared/conformance against a fresh zkd
#   make stress  ordering rules 1-4, 100 rounds against a TSan zkd (ROUNDS=N)
#   make bench   a short benchmark (see bench/README.md)
#
# Variant builds live in their own directories (build/, build-asan/, build-tsan/)
# so switching sanitizers never mixes objects.

SAN       ?=
BUILD     ?= build
CC        ?= cc
CFLAGS    ?= -O2 -g
CFLAGS    += -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -pthread -fno-omit-frame-pointer
CPPFLAGS  += -I.
LDLIBS    += -lurcu-memb -lurcu-cds -lurcu-common -lssl -lcrypto -pthread
ifneq ($(SAN),)
CFLAGS    += -fsanitize=$(SAN) -fno-sanitize-recover=all
LDFLAGS   += -fsanitize=$(SAN)
endif

# Debian packages the build and the tests need (installed by `make deps` when missing).
DEB_BUILD = build-essential liburcu-dev libssl-dev libcriterion-dev pkg-config
DEB_TEST  = zookeeper zookeeper-bin default-jre-headless python3 python3-kazoo \
            python3-pytest libzookeeper-mt-dev netcat-openbsd libcurator-recipes-java default-jdk-headless \
            iproute2 openssl python3-prometheus-client zktop
DEB_ALL   = $(DEB_BUILD) $(DEB_TEST)

LIB_SRC  := $(sort $(wildcard net/*.c storage/*.c processors/*.c election/*.c server/*.c))
LIB_SRC  := $(filter-out server/main.c server/zkd_dump.c,$(LIB_SRC))
LIB_OBJ  := $(LIB_SRC:%.c=$(BUILD)/%.o)
UNIT_SRC := $(sort $(wildcard tests/unit/*.c))
UNIT_OBJ := $(UNIT_SRC:%.c=$(BUILD)/%.o)

.PHONY: all deps run test unit integration conformance asan tsan stress bench bench-ensemble ensemble ensemble-zk fuzz fuzz-regress clean
all: $(BUILD)/zkd bin/zkd $(BUILD)/zkd-dump bin/zkd-dump

deps:
	@missing=""; for p in $(DEB_ALL); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=""; else SUDO=sudo; fi; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing >/dev/null; \
	fi

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -MMD -MP -c $< -o $@

$(BUILD)/libzkd.a: $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/zkd: $(BUILD)/server/main.o $(BUILD)/libzkd.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

bin/zkd: $(BUILD)/zkd
	@mkdir -p bin
	ln -sf ../$(BUILD)/zkd bin/zkd

# zkd-dump: prints txn log and snapshot files readably (server/zkd_dump.c)
$(BUILD)/zkd-dump: $(BUILD)/server/zkd_dump.o $(BUILD)/libzkd.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

bin/zkd-dump: $(BUILD)/zkd-dump
	@mkdir -p bin
	ln -sf ../$(BUILD)/zkd-dump bin/zkd-dump

$(BUILD)/unit_tests: $(UNIT_OBJ) $(BUILD)/libzkd.a
	$(CC) $(LDFLAGS) -o $@ $^ -lcriterion $(LDLIBS)

$(BUILD)/zkc_test: tests/integration/zkc_test.c
	$(CC) $(CFLAGS) -Wno-deprecated-declarations -o $@ $< -lzookeeper_mt -pthread

# the election alone, for the FLE interop test against real ZooKeeper servers
$(BUILD)/fle_probe: tests/integration/fle_probe.c $(BUILD)/libzkd.a
	$(CC) $(CPPFLAGS) $(CFLAGS) $(LDFLAGS) -o $@ $< $(BUILD)/libzkd.a $(LDLIBS)

run: deps all
	$(BUILD)/zkd conf/zoo.cfg

unit: $(BUILD)/unit_tests
	$(BUILD)/unit_tests --jobs 2

integration: $(BUILD)/zkd $(BUILD)/zkd-dump $(BUILD)/zkc_test $(BUILD)/fle_probe
	/usr/bin/python3 tests/integration/test_storage_interop.py
	ZKD=$(BUILD)/zkd ZKC_TEST=$(BUILD)/zkc_test FLE_PROBE=$(abspath $(BUILD)/fle_probe) bash tests/integration/run.sh

test: deps
	$(MAKE) unit integration fuzz-regress

asan: deps
	$(MAKE) BUILD=build-asan SAN=address,undefined unit integration conformance

# Criterion cannot start under ThreadSanitizer (its arena allocator), so the
# TSan run is the server's: integration and conformance against a TSan zkd.
tsan: deps
	$(MAKE) BUILD=build-tsan SAN=thread integration conformance

# Ordering rules 1-4 hammered 100 times against a ThreadSanitizer zkd (long:
# not part of make test).
stress: deps
	$(MAKE) BUILD=build-tsan SAN=thread build-tsan/zkd
	bash tests/stress.sh build-tsan/zkd $(or $(ROUNDS),100)

conformance: deps $(BUILD)/zkd
	bash tests/conformance.sh $(BUILD)/zkd

clean:
	rm -rf build build-asan build-tsan build-fuzz
	rm -f bin/zkd bin/zkd-dump   # build symlinks; bin/zkdctl is source

-include $(LIB_OBJ:.o=.d) $(UNIT_OBJ:.o=.d) $(BUILD)/server/main.d $(BUILD)/server/zkd_dump.d

# ---- bench (bench/README.md): zkbench, the probes, and `make bench` = a short compare run.
BENCH_ZKBENCH_OBJ := $(patsubst %.c,$(BUILD)/%.o,bench/zkbench.c bench/engine.c bench/hist.c \
                       bench/zkproto.c bench/procstat.c bench/writeprobe.c net/jute.c net/records.c)

$(BUILD)/bench/zkbench: $(BENCH_ZKBENCH_OBJ)
	$(CC) $(LDFLAGS) -o $@ $^ -lssl -lcrypto -lm -pthread

$(BUILD)/bench/probes: $(BUILD)/bench/probes.o $(BUILD)/bench/hist.o
	$(CC) $(LDFLAGS) -o $@ $^

bench: deps $(BUILD)/zkd $(BUILD)/bench/zkbench $(BUILD)/bench/probes
	@command -v gnuplot >/dev/null || $(MAKE) --no-print-directory deps DEB_ALL=gnuplot-nox
	bench/compare --quick --zkd $(BUILD)/zkd --zkbench $(BUILD)/bench/zkbench --probes $(BUILD)/bench/probes

# 3-server ensembles, zkd against ZooKeeper 3.8: write throughput and failover
bench-ensemble: deps $(BUILD)/zkd $(BUILD)/bench/zkbench
	bench/ensemble --quick
	bench/failover --server zkd
	bench/failover --server zk

# the ensemble suite alone (make integration runs it too); ensemble-zk runs
# it against real ZooKeeper only, to check the tests themselves
ensemble: $(BUILD)/zkd
	ZKD=$(BUILD)/zkd ENSEMBLE_KINDS="zkd,zkd,zkd;zkd,zkd,zk;zkd,zk,zk" /usr/bin/python3 -m pytest -p no:cacheprovider -v tests/integration/test_ensemble.py
ensemble-zk:
	ENSEMBLE_KINDS=zk,zk,zk /usr/bin/python3 -m pytest -p no:cacheprovider -v tests/integration/test_ensemble.py

-include $(BENCH_ZKBENCH_OBJ:.o=.d) $(BUILD)/bench/probes.d

# libFuzzer targets (make fuzz, clang) and their corpora replayed under
# gcc ASan+UBSan (make fuzz-regress, part of make test): tests/fuzz/README.md
include tests/fuzz/fuzz.mk
