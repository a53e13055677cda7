# tests/fuzz/fuzz.mk - libFuzzer targets (tests/fuzz/*.c) and their regression
# runner; included by the Makefile. See tests/fuzz/README.md.
#
#   make fuzz                    each target for FUZZ_SECONDS (60) with clang,
#                                libFuzzer, ASan and UBSan; fails if one crashed
#   make fuzz FUZZ_SECONDS=10 FUZZ_TARGETS="jute txn"
#   make fuzz-regress            every input of tests/fuzz/corpus/<t> and
#                                tests/fuzz/regress/<t> through target <t> once:
#                                gcc + ASan/UBSan (build-asan/), no clang needed
#
# The fuzz build lives in build-fuzz/: the zkd sources the targets use,
# compiled by clang with coverage (-fsanitize=fuzzer-no-link) and the same
# sanitizers. net/'s event loop and logger are replaced by tests/fuzz/lib.

ifndef FUZZ_MK_INCLUDED
FUZZ_MK_INCLUDED := 1
# the makefiles read so far, for the sub-makes below (also when this file is
# given with -f rather than included)
FUZZ_MAKEFILES := $(filter-out %.d,$(MAKEFILE_LIST))
FUZZ_SUBMAKE = $(MAKE) --no-print-directory $(addprefix -f ,$(FUZZ_MAKEFILES))

FUZZ_CC      ?= clang
FUZZ_SECONDS ?= 60
FUZZ_BUILD   ?= build-fuzz
FUZZ_ALL     := $(sort $(basename $(notdir $(wildcard tests/fuzz/*.c))))
FUZZ_TARGETS ?= $(FUZZ_ALL)
DEB_FUZZ     := clang libclang-rt-14-dev

# pointer-overflow is off: liburcu's cds_lfht_for_each_entry takes
# caa_container_of(NULL) at the end of every walk, which clang reports as
# "applying zero offset to null pointer" (gcc's UBSan, `make asan`, does not)
FUZZ_SAN     := -fsanitize=address,undefined -fno-sanitize=pointer-overflow -fno-sanitize-recover=all
FUZZ_CFLAGS  := -std=c11 -D_GNU_SOURCE -O1 -g -fno-omit-frame-pointer -pthread -Wall -Wextra $(FUZZ_SAN)
# -Werror for the fuzz sources only: `make` holds the server's sources to it
# (with gcc), and a clang-only warning there should not stop a fuzz run
FUZZ_WERROR   = $(if $(filter tests/fuzz/%,$<),-Werror)
# libFuzzer's -max_len per target (bytes of one input), and dictionaries
FUZZ_DICT_client_frames   := tests/fuzz/client.dict
FUZZ_DICT_connect         := tests/fuzz/client.dict
FUZZ_MAXLEN_client_frames := 16384
FUZZ_MAXLEN_connect       := 8192
FUZZ_MAXLEN_quorum        := 65536
FUZZ_MAXLEN_snapstream    := 65536
FUZZ_MAXLEN_cnx           := 8192

# Everything the targets may link, less the socket loop, its connection
# types (conn_plain.c, conn_tls.c) and the logger (tests/fuzz/lib/fake_net.c and
# fuzz_log.c stand in for them; fast_rcu.c replaces liburcu's call_rcu and
# rcu_barrier, whose worker thread makes every barrier cost 10 ms).
FUZZ_LIB_SRC := $(filter-out net/loop.c net/conn%.c net/log.c,\
                  $(sort $(wildcard net/*.c storage/*.c processors/*.c election/*.c)))
FUZZ_LIB_OBJ := $(FUZZ_LIB_SRC:%.c=$(FUZZ_BUILD)/%.o)
# always linked / linked when used (client_harness.c replaces pipeline_submit)
FUZZ_FIXED   := tests/fuzz/lib/fake_net.c tests/fuzz/lib/fuzz_log.c tests/fuzz/lib/fast_rcu.c
FUZZ_HARNESS := tests/fuzz/lib/client_harness.c

.PHONY: fuzz fuzz-build fuzz-deps fuzz-regress fuzz-regress-run

fuzz-deps:
	@+command -v $(FUZZ_CC) >/dev/null && [ -n "$$(ls /usr/lib/llvm-*/lib/clang/*/lib/linux/libclang_rt.fuzzer-x86_64.a 2>/dev/null)" ] \
	  || $(FUZZ_SUBMAKE) deps DEB_ALL="$(DEB_FUZZ)"

$(FUZZ_BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(CPPFLAGS) $(FUZZ_CFLAGS) $(FUZZ_WERROR) -fsanitize=fuzzer-no-link -MMD -MP -c $< -o $@

# (fuzz.mk is a prerequisite: the list of objects is decided here)
$(FUZZ_BUILD)/libzkd.a: $(FUZZ_LIB_OBJ) tests/fuzz/fuzz.mk
	@rm -f $@
	ar rcs $@ $(filter %.o,$^)

$(FUZZ_BUILD)/libharness.a: $(FUZZ_HARNESS:%.c=$(FUZZ_BUILD)/%.o)
	@rm -f $@
	ar rcs $@ $^

$(FUZZ_ALL:%=$(FUZZ_BUILD)/%): $(FUZZ_BUILD)/%: $(FUZZ_BUILD)/tests/fuzz/%.o $(FUZZ_FIXED:%.c=$(FUZZ_BUILD)/%.o) \
                                 $(FUZZ_BUILD)/libharness.a $(FUZZ_BUILD)/libzkd.a
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer -o $@ $(filter %.o,$^) \
	  -Wl,--start-group $(FUZZ_BUILD)/libharness.a $(FUZZ_BUILD)/libzkd.a -Wl,--end-group $(LDLIBS)

fuzz-build: fuzz-deps
	@+$(FUZZ_SUBMAKE) $(FUZZ_TARGETS:%=$(FUZZ_BUILD)/%)

# Runs each target in turn on a working corpus (build-fuzz/corpus/<t>, seeded
# from tests/fuzz/corpus/<t> and tests/fuzz/regress/<t>); a crashing input goes
# to build-fuzz/crashes/<t>/ and fails the run once every target had its turn.
fuzz: fuzz-build
	@failed=""; \
	for tm in $(foreach t,$(FUZZ_TARGETS),$(t):$(or $(FUZZ_MAXLEN_$(t)),4096):$(FUZZ_DICT_$(t))); do \
	  t=$${tm%%:*}; m=$${tm#*:}; dict=$${m#*:}; m=$${m%%:*}; \
	  mkdir -p $(FUZZ_BUILD)/corpus/$$t $(FUZZ_BUILD)/crashes/$$t; \
	  dirs="$(FUZZ_BUILD)/corpus/$$t"; \
	  for d in tests/fuzz/corpus/$$t tests/fuzz/regress/$$t; do [ -d $$d ] && dirs="$$dirs $$d"; done; \
	  printf 'fuzz: %-14s %ss ... ' $$t $(FUZZ_SECONDS); \
	  if $(FUZZ_BUILD)/$$t -max_total_time=$(FUZZ_SECONDS) -max_len=$$m $${dict:+-dict=$$dict} -timeout=10 -rss_limit_mb=2048 \
	       -print_final_stats=1 -artifact_prefix=$(FUZZ_BUILD)/crashes/$$t/ $$dirs >$(FUZZ_BUILD)/$$t.log 2>&1; then \
	    sed -n 's/^stat::number_of_executed_units: */ok, execs /p' $(FUZZ_BUILD)/$$t.log; \
	  else \
	    echo "CRASH (log: $(FUZZ_BUILD)/$$t.log)"; grep -m1 -A12 '^==[0-9]*==\|check failed\|runtime error' $(FUZZ_BUILD)/$$t.log; \
	    ls $(FUZZ_BUILD)/crashes/$$t/; failed="$$failed $$t"; \
	  fi; \
	done; \
	if [ -n "$$failed" ]; then echo "fuzz: crashes in:$$failed (inputs in $(FUZZ_BUILD)/crashes/)"; exit 1; fi

# The regression runner: the same targets with tests/fuzz/lib/regress_main.c
# as main, built like `make asan` (gcc, ASan + UBSan) in build-asan/, from
# the same objects as build-asan/libzkd.a less the ones fake_net.c and
# fuzz_log.c replace (so a net_* function processors/ starts to use shows
# up as an undefined reference: fake_net.c needs it too).
fuzz-regress:
	@+$(FUZZ_SUBMAKE) BUILD=build-asan SAN=address,undefined fuzz-regress-run

FUZZ_R_FIXED := $(patsubst %.c,$(BUILD)/%.o,tests/fuzz/lib/regress_main.c $(FUZZ_FIXED))

$(BUILD)/fuzz/libzkd.a: $(FUZZ_LIB_SRC:%.c=$(BUILD)/%.o) tests/fuzz/fuzz.mk
	@mkdir -p $(dir $@)
	@rm -f $@
	ar rcs $@ $(filter %.o,$^)

$(BUILD)/fuzz/libharness.a: $(FUZZ_HARNESS:%.c=$(BUILD)/%.o)
	@mkdir -p $(dir $@)
	@rm -f $@
	ar rcs $@ $^

$(FUZZ_ALL:%=$(BUILD)/fuzz/%-regress): $(BUILD)/fuzz/%-regress: $(BUILD)/tests/fuzz/%.o $(FUZZ_R_FIXED) \
                                          $(BUILD)/fuzz/libharness.a $(BUILD)/fuzz/libzkd.a
	$(CC) $(LDFLAGS) -o $@ $(filter %.o,$^) \
	  -Wl,--start-group $(BUILD)/fuzz/libharness.a $(BUILD)/fuzz/libzkd.a -Wl,--end-group $(LDLIBS)

fuzz-regress-run: $(FUZZ_ALL:%=$(BUILD)/fuzz/%-regress)
	@failed=""; for t in $(FUZZ_ALL); do \
	  dirs=""; for d in tests/fuzz/corpus/$$t tests/fuzz/regress/$$t; do [ -d $$d ] && dirs="$$dirs $$d"; done; \
	  [ -z "$$dirs" ] || $(BUILD)/fuzz/$$t-regress $$dirs || failed="$$failed $$t"; \
	done; \
	if [ -n "$$failed" ]; then echo "fuzz-regress: failed:$$failed"; exit 1; fi

-include $(FUZZ_LIB_OBJ:.o=.d) $(patsubst %.c,$(FUZZ_BUILD)/%.d,$(FUZZ_FIXED) $(FUZZ_HARNESS)) \
         $(FUZZ_ALL:%=$(FUZZ_BUILD)/tests/fuzz/%.d) \
         $(patsubst %.c,$(BUILD)/%.d,$(FUZZ_FIXED) $(FUZZ_HARNESS) tests/fuzz/lib/regress_main.c) \
         $(FUZZ_ALL:%=$(BUILD)/tests/fuzz/%.d)
endif
