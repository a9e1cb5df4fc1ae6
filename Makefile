# mpp — Message Posting Protocol (RFC 1204) server, queue runner and client.
#
#   make            build every program into bin/
#   make test       build, then run unit, fuzz-corpus and integration tests
#   make asan       the same tests with AddressSanitizer + UBSan
#   make fuzz       run each libFuzzer target for FUZZ_SECONDS (clang)
#   make run        local instance under ./run/, in the foreground
#   make powerloss  power-cut tests on tests/powerloss/plfs (>= 200 cuts)
#   make bench      benchmarks (not part of make test)
#   make install    PREFIX, DESTDIR, SYSCONFDIR honoured

PREFIX     ?= /usr/local
SYSCONFDIR ?= /etc
BINDIR     ?= $(PREFIX)/bin
SBINDIR    ?= $(PREFIX)/sbin
MANDIR     ?= $(PREFIX)/share/man
DATADIR    ?= $(PREFIX)/share/mpp
SPOOLDIR   ?= /var/spool/mpp
# The daemons' user and group, and the group that may read the queue
# (mppq list, show, stats): see docs/admin.md.
MPP_USER    ?= mpp
MPP_GROUP   ?= mpp
QUEUE_GROUP ?= mppq

CC      ?= cc
CFLAGS  ?= -O2 -g
WERROR  ?= -Werror
WARNINGS = -std=c11 -Wall -Wextra $(WERROR) -Wshadow -Wpointer-arith \
	   -Wstrict-prototypes -Wmissing-prototypes -Wformat=2 \
	   -Wno-unused-parameter -Wvla -Wcast-qual -Wwrite-strings
HARDEN   = -fstack-protector-strong -fPIE -D_FORTIFY_SOURCE=2
ALL_CPPFLAGS = -D_GNU_SOURCE -Icommon -I$(BUILD)/gen $(CPPFLAGS) $(EXTRA_CPPFLAGS)
ALL_CFLAGS   = $(WARNINGS) $(HARDEN) $(CFLAGS) $(EXTRA_CFLAGS)
ALL_LDFLAGS  = -pie -Wl,-z,relro,-z,now $(LDFLAGS) $(EXTRA_LDFLAGS)
LIBS     = -levent_openssl -levent_pthreads -levent -lssl -lcrypto -lsqlite3 \
	   -lcrypt -lbsd -lpthread

# BUILD holds objects, BIN the programs; make asan points both elsewhere.
BUILD ?= build
BIN   ?= bin

COMMON_SRC   = $(sort $(wildcard common/*.c))
MPPD_SRC     = $(filter-out mppd/main.c mppd/mpppasswd.c, $(sort $(wildcard mppd/*.c)))
QUEUE_SRC    = $(filter-out mppqueue/main.c mppqueue/mppq.c, $(sort $(wildcard mppqueue/*.c)))
CLIENT_SRC   = $(filter-out client/mppsend.c, $(sort $(wildcard client/*.c)))
# The load generator of make bench lives beside its driver (not installed).
BENCH_SRC    = $(filter-out tests/bench/mppbench.c tests/bench/mppfill.c, \
	       $(sort $(wildcard tests/bench/*.c)))
UNIT_SRC     = $(sort $(wildcard tests/unit/test_*.c))
FUZZ_SRC     = $(sort $(wildcard tests/fuzz/fuzz_*.c))

# Quiet by default; make V=1 shows every command.
ifeq ($(V),1)
Q =
else
Q = @
endif

obj = $(patsubst %.c,$(BUILD)/%.o,$(1))

LIBCOMMON = $(BUILD)/libmppcommon.a
LIBMPPD   = $(BUILD)/libmppd.a
LIBQUEUE  = $(BUILD)/libmppqueue.a
LIBCLIENT = $(BUILD)/libmppclient.a
ALL_LIBS  = $(LIBMPPD) $(LIBQUEUE) $(LIBCLIENT) $(LIBCOMMON)

PROGRAMS = $(BIN)/mppd $(BIN)/mpppasswd $(BIN)/mppqueue $(BIN)/mppq \
	   $(BIN)/mppsend $(BIN)/mppbench $(BIN)/mppfill
UNIT_TESTS = $(patsubst tests/unit/%.c,$(BUILD)/tests/%,$(UNIT_SRC))
FUZZ_REPLAY = $(patsubst tests/fuzz/%.c,$(BUILD)/fuzz-replay/%,$(FUZZ_SRC))

.PHONY: all test include-check fault-build powerloss powerloss-short plfs valgrind unit-test fuzz-replay integration-test asan fuzz run bench \
	install uninstall clean deps
.SUFFIXES:
# Keep test objects between runs (they are intermediate in pattern chains).
.SECONDARY:

all: $(PROGRAMS)

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC      $<")
	$(Q)$(CC) $(ALL_CPPFLAGS) $(ALL_CFLAGS) -MMD -MP -c -o $@ $<

# The schema and its migrations are compiled in from sql/*.sql
# (sql/migrate-2.sql becomes migrate_2_sql[] in migrate-2_sql.h).
SQL_HEADERS = $(patsubst sql/%.sql,$(BUILD)/gen/%_sql.h,$(wildcard sql/*.sql))
$(BUILD)/gen/%_sql.h: sql/%.sql
	@mkdir -p $(dir $@)
	$(Q){ echo 'static const char $(subst -,_,$*)_sql[] ='; \
	  sed -e 's/\\/\\\\/g' -e 's/"/\\"/g' -e 's/^/"/' -e 's/$$/\\n"/' $<; \
	  echo ';'; } > $@
$(BUILD)/common/index.o: $(SQL_HEADERS)

$(LIBCOMMON): $(call obj,$(COMMON_SRC))
$(LIBMPPD): $(call obj,$(MPPD_SRC))
$(LIBQUEUE): $(call obj,$(QUEUE_SRC))
$(LIBCLIENT): $(call obj,$(CLIENT_SRC))
$(ALL_LIBS):
	@mkdir -p $(dir $@)
	$(Q)rm -f $@
	$(Q)ar rcs $@ $^ $(if $^,,$(BUILD)/empty.o)

$(BUILD)/empty.o:
	@mkdir -p $(dir $@)
	$(Q)echo 'typedef int mpp_empty_unit;' | $(CC) -x c -c -o $@ -

$(LIBMPPD) $(LIBQUEUE) $(LIBCLIENT) $(LIBCOMMON): | $(BUILD)/empty.o

$(BIN)/mppd: $(BUILD)/mppd/main.o $(LIBMPPD) $(LIBCOMMON)
$(BIN)/mpppasswd: $(BUILD)/mppd/mpppasswd.o $(LIBMPPD) $(LIBCOMMON)
$(BIN)/mppqueue: $(BUILD)/mppqueue/main.o $(LIBQUEUE) $(LIBCOMMON)
$(BIN)/mppq: $(BUILD)/mppqueue/mppq.o $(LIBQUEUE) $(LIBCOMMON)
$(BIN)/mppsend: $(BUILD)/client/mppsend.o $(LIBCLIENT) $(LIBCOMMON)
$(BIN)/mppbench: $(BUILD)/tests/bench/mppbench.o $(call obj,$(BENCH_SRC)) $(LIBCLIENT) \
	  $(LIBMPPD) $(LIBCOMMON)
$(BIN)/mppfill: $(BUILD)/tests/bench/mppfill.o $(LIBMPPD) $(LIBCOMMON)
$(PROGRAMS):
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(ALL_CFLAGS) $(ALL_LDFLAGS) -o $@ $^ $(LIBS)

# Unit tests link every library so a test can reach any module, and the
# helper for their temporary directories. test_store wraps write(2) to see
# which thread writes files.
$(BUILD)/tests/%: $(BUILD)/tests/unit/%.o $(BUILD)/tests/unit/tmpdir.o $(ALL_LIBS)
	@mkdir -p $(dir $@)
	$(Q)$(CC) $(ALL_CFLAGS) $(ALL_LDFLAGS) $(TEST_LDFLAGS) -o $@ $^ $(LIBS) -lcmocka
$(BUILD)/tests/test_store: TEST_LDFLAGS = -Wl,--wrap=write

# Fuzz targets built with a plain main() that replays files: runs in make test
# with any compiler. make fuzz builds the same sources with libFuzzer.
$(BUILD)/fuzz-replay/%: $(BUILD)/tests/fuzz/%.o $(BUILD)/tests/fuzz/replay_main.o $(ALL_LIBS)
	@mkdir -p $(dir $@)
	$(Q)$(CC) $(ALL_CFLAGS) $(ALL_LDFLAGS) -o $@ $^ $(LIBS)

$(BUILD)/tests/fuzz/replay_main.o: tests/fuzz/replay_main.c
	@mkdir -p $(dir $@)
	$(Q)$(CC) $(ALL_CPPFLAGS) $(ALL_CFLAGS) -c -o $@ $<

PYTEST ?= /usr/bin/python3 -m pytest
PYTEST_ARGS ?= -q

# Packages first, then every build in parallel, then the tests in order:
# under -j a prerequisite list would build before its packages are in.
test: deps
	@$(MAKE) --no-print-directory include-check
	@$(MAKE) --no-print-directory all fault-build $(UNIT_TESTS) $(FUZZ_REPLAY)
	@$(MAKE) --no-print-directory unit-test
	@$(MAKE) --no-print-directory fuzz-replay
	@$(MAKE) --no-print-directory integration-test
	@$(MAKE) --no-print-directory powerloss-short

# Programs with the crash points of common/fault.h compiled in, for the
# crash tests only (MPP_FAULT_BIN); never installed.
fault-build:
	@$(MAKE) --no-print-directory BUILD=$(BUILD)/fault BIN=$(BUILD)/fault/bin \
	  EXTRA_CPPFLAGS=-DMPP_FAULT_INJECTION $(BUILD)/fault/bin/mppd $(BUILD)/fault/bin/mppqueue

# The power-cut file system of tests/powerloss (libfuse3) and its tests:
# make powerloss runs PL_CUTS cuts (PL_SEED replays a run); make test runs
# the short form.
PLFS = $(BUILD)/powerloss/plfs
plfs: $(PLFS)
$(PLFS): tests/powerloss/plfs.c
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC      $<")
	$(Q)$(CC) $(ALL_CPPFLAGS) $(ALL_CFLAGS) $$(pkg-config --cflags fuse3) \
	  $(ALL_LDFLAGS) -o $@ $< $$(pkg-config --libs fuse3)

PL_CUTS ?= 200
POWERLOSS_ENV = MPP_BIN=$(abspath $(BIN)) MPP_FAULT_BIN=$(abspath $(BUILD)/fault/bin) \
	  MPP_PLFS=$(abspath $(PLFS))
powerloss: deps all fault-build $(PLFS)
	$(POWERLOSS_ENV) PL_CUTS=$(PL_CUTS) $(PYTEST) $(PYTEST_ARGS) -s tests/powerloss
powerloss-short: all fault-build $(PLFS)
	$(POWERLOSS_ENV) PL_CUTS=$${PL_CUTS_SHORT:-20} PL_SEED=$${PL_SEED:-1204} \
	  $(PYTEST) $(PYTEST_ARGS) -rP tests/powerloss

# No program folder includes another's, and common/ none (architecture.md).
include-check:
	@/usr/bin/env python3 tests/include_rule.py

unit-test: $(UNIT_TESTS)
	@set -e; for t in $(UNIT_TESTS); do echo "== $$t"; $$t; done

fuzz-replay: $(FUZZ_REPLAY)
	@set -e; for t in $(FUZZ_REPLAY); do n=$$(basename $$t); \
	  echo "== replay $$n"; $$t tests/fuzz/corpus/$$n; done

integration-test: all fault-build
	MPP_BIN=$(abspath $(BIN)) MPP_FAULT_BIN=$(abspath $(BUILD)/fault/bin) \
	  $(PYTEST) $(PYTEST_ARGS) tests/integration

asan:
	$(MAKE) BUILD=build/asan BIN=build/asan/bin \
	  CFLAGS="-O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined" \
	  EXTRA_LDFLAGS="-fsanitize=address,undefined" test

# The daemons under valgrind for the tests that drive them most (slow:
# about ten times the plain run).
VALGRIND_TESTS ?= tests/integration/test_protocol.py \
	tests/integration/test_message.py tests/integration/test_queue.py \
	tests/integration/test_spare.py
valgrind: all
	MPP_BIN=$(abspath $(BIN)) MPP_VALGRIND=1 $(PYTEST) $(PYTEST_ARGS) $(VALGRIND_TESTS)

FUZZ_SECONDS ?= 60
fuzz:
	@set -e; for f in $(FUZZ_SRC); do n=$$(basename $$f .c); \
	  $(MAKE) --no-print-directory BUILD=build/fuzz CC=clang \
	    EXTRA_CFLAGS="-fsanitize=fuzzer-no-link,address,undefined -g -O1" \
	    build/fuzz/libmppcommon.a build/fuzz/libmppd.a build/fuzz/libmppqueue.a build/fuzz/libmppclient.a; \
	  clang $(ALL_CPPFLAGS) -g -O1 -fsanitize=fuzzer,address,undefined -o build/fuzz/$$n $$f \
	    build/fuzz/libmppd.a build/fuzz/libmppqueue.a build/fuzz/libmppclient.a build/fuzz/libmppcommon.a $(LIBS); \
	  mkdir -p build/fuzz/corpus-$$n; \
	  echo "== fuzz $$n for $(FUZZ_SECONDS)s"; \
	  build/fuzz/$$n -max_total_time=$(FUZZ_SECONDS) -rss_limit_mb=2048 \
	    build/fuzz/corpus-$$n tests/fuzz/corpus/$$n; done

deps:
	@sh tests/deps.sh

run:
	@sh tests/deps.sh build
	@$(MAKE) --no-print-directory all
	sh tests/run-local.sh

# The bench group (the steady-state plot's matplotlib) may be missing:
# the plot is then skipped, the figures are not.
bench: deps
	@sh tests/deps.sh bench || echo "bench: without python3-matplotlib the steady-state plot is skipped"
	@$(MAKE) --no-print-directory all
	sh tests/bench/run.sh

# Daemons in sbin, user programs in bin; man pages; the schema for
# reference; an example config that never overwrites an installed one.
# Made only when missing, so an administrator's modes stay: the config
# directory 2755 root:MPP_GROUP (mpppasswd's files keep its group; mpp.conf,
# 0644, holds no secret and every mppq user reads it), the spool 2750
# MPP_USER:QUEUE_GROUP (the group reads the index, never the messages).
# Owners are set where the accounts exist and make runs as root; a package
# build leaves them to its maintainer scripts.
# $(call install_dir,DIR,MODE,OWNER,GROUP): DIR with MODE when missing,
# and OWNER:GROUP when make runs as root and both exist.
install_dir = if [ ! -d $(1) ]; then echo "install -d -m $(2) $(1)"; \
	  install -d -m $(2) $(1) && \
	  if [ "$$(id -u)" = 0 ] && id -u $(3) >/dev/null 2>&1 && \
	    getent group $(4) >/dev/null; then chown $(3):$(4) $(1); \
	  else echo "note: $(1) should belong to $(3):$(4), see docs/admin.md"; \
	  fi; fi
MAN1 = docs/mppsend.1
MAN5 = docs/mpp.conf.5
MAN8 = docs/mppd.8 docs/mppqueue.8 docs/mppq.8 docs/mpppasswd.8
install: all
	install -d $(DESTDIR)$(SBINDIR) $(DESTDIR)$(BINDIR) \
	  $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(MANDIR)/man5 $(DESTDIR)$(MANDIR)/man8 \
	  $(DESTDIR)$(DATADIR)
	@$(call install_dir,$(DESTDIR)$(SYSCONFDIR)/mpp,2755,root,$(MPP_GROUP))
	@$(call install_dir,$(DESTDIR)$(SPOOLDIR),2750,$(MPP_USER),$(QUEUE_GROUP))
	install -m 755 $(BIN)/mppd $(BIN)/mppqueue $(BIN)/mpppasswd $(DESTDIR)$(SBINDIR)
	install -m 755 $(BIN)/mppsend $(BIN)/mppq $(DESTDIR)$(BINDIR)
	for f in $(MAN1); do [ ! -f $$f ] || install -m 644 $$f $(DESTDIR)$(MANDIR)/man1; done
	for f in $(MAN5); do [ ! -f $$f ] || install -m 644 $$f $(DESTDIR)$(MANDIR)/man5; done
	for f in $(MAN8); do [ ! -f $$f ] || install -m 644 $$f $(DESTDIR)$(MANDIR)/man8; done
	install -m 644 sql/schema.sql $(DESTDIR)$(DATADIR)/schema.sql
	install -m 644 docs/mpp.conf.example $(DESTDIR)$(DATADIR)/mpp.conf.example
	install -m 644 docs/mpp.logrotate $(DESTDIR)$(DATADIR)/mpp.logrotate
	install -m 644 docs/scaling.md docs/haproxy-mpp.cfg docs/prometheus-mpp.rules.yml \
	  $(DESTDIR)$(DATADIR)
	for f in docs/systemd/*; do [ ! -f $$f ] || install -m 644 $$f $(DESTDIR)$(DATADIR); done
	[ -f $(DESTDIR)$(SYSCONFDIR)/mpp/mpp.conf ] || \
	  install -m 644 docs/mpp.conf.example $(DESTDIR)$(SYSCONFDIR)/mpp/mpp.conf

uninstall:
	rm -f $(DESTDIR)$(SBINDIR)/mppd $(DESTDIR)$(SBINDIR)/mppqueue \
	  $(DESTDIR)$(SBINDIR)/mpppasswd $(DESTDIR)$(BINDIR)/mppsend $(DESTDIR)$(BINDIR)/mppq
	for f in $(MAN1); do rm -f $(DESTDIR)$(MANDIR)/man1/$$(basename $$f); done
	for f in $(MAN5); do rm -f $(DESTDIR)$(MANDIR)/man5/$$(basename $$f); done
	for f in $(MAN8); do rm -f $(DESTDIR)$(MANDIR)/man8/$$(basename $$f); done
	rm -rf $(DESTDIR)$(DATADIR)
	@echo "kept $(DESTDIR)$(SYSCONFDIR)/mpp (configuration and passwords)" \
	  "and $(DESTDIR)$(SPOOLDIR) (the queue)"

clean:
	rm -rf build bin

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
