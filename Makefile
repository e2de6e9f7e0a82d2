# SPDX-License-Identifier: Apache-2.0
# tardy: build, test, demo, bench. `make V=1` shows the commands.
.DELETE_ON_ERROR:
.DEFAULT_GOAL := all

BUILD    ?= build
CXX      ?= g++
CLANG    ?= clang
STRIP    ?= llvm-strip
BPFTOOL  ?= bpftool
# x86_64 only: vmlinux/vmlinux.h holds x86_64 kernel types, the syscall numbers and the VM
# rig are x86_64's, and nothing else is built or tested (docs/design.md, "Architectures").
ifneq ($(shell uname -m),x86_64)
$(error tardy builds on x86_64 only, and this machine is $(shell uname -m): see docs/design.md, "Architectures")
endif
ARCH     := x86

ifeq ($(V),1)
Q :=
else
Q := @
endif

BPF_CFLAGS := -g -O2 -target bpf -D__TARGET_ARCH_$(ARCH) -Wall -Wextra -Werror -Wno-unused-parameter \
              -Ivmlinux -Iinclude -Ibpf -I/usr/include/$(shell uname -m)-linux-gnu
# -g1: line tables only, enough for a backtrace with file and line, and a third faster to
# build than -g (the .deb strips it anyway); `make CXXFLAGS="-O0 -g"` for a debugger.
CXXFLAGS   ?= -O2 -g1
# date/tz: Debian's libdate-tz is built with the system tz database and the C locale only;
# every user of <date/tz.h> must see the same configuration (the class layouts differ).
CXXFLAGS   += -std=c++20 -Wall -Wextra -Werror -Iinclude -Iuser -I$(BUILD) -MMD -MP -DUSE_OS_TZDB=1 -DONLY_C_LOCALE=1
LDLIBS     := -lbpf -lelf -lz -lmnl -lcpp-httplib -lyaml-cpp -ldate-tz -pthread
GTEST_LIBS := -lgtest -lgtest_main -lgmock -pthread

BPF_SRCS   := $(wildcard bpf/*.bpf.c)
BPF_OBJS   := $(patsubst bpf/%.bpf.c,$(BUILD)/%.bpf.o,$(BPF_SRCS))
SKELS      := $(patsubst bpf/%.bpf.c,$(BUILD)/%.skel.h,$(BPF_SRCS))
LIB_SRCS   := $(filter-out user/cli/main.cpp,$(wildcard user/*/*.cpp))
LIB_OBJS   := $(patsubst user/%.cpp,$(BUILD)/user/%.o,$(LIB_SRCS))
TEST_BINS  := $(BUILD)/unit_tests $(BUILD)/bpf_tests $(BUILD)/integration_tests $(BUILD)/tardy-testkit

all: $(BUILD)/tardy

# Generated files are kept (not intermediates): a second `make` does nothing.
.SECONDARY: $(BPF_OBJS) $(SKELS)

$(BUILD)/%.bpf.o: bpf/%.bpf.c $(wildcard bpf/lib/*.bpf.h) include/tardy/abi.h | $(BUILD)
	@echo "  BPF     $@"
	$(Q)$(CLANG) $(BPF_CFLAGS) -c $< -o $@
	$(Q)$(STRIP) -g $@

$(BUILD)/%.skel.h: $(BUILD)/%.bpf.o
	@echo "  SKEL    $@"
	$(Q)$(BPFTOOL) gen skeleton $< name tardy_$* > $@

$(BUILD)/user/%.o: user/%.cpp | $(SKELS)
	@mkdir -p $(@D)
	@echo "  CXX     $@"
	$(Q)$(CXX) $(CXXFLAGS) -c $< -o $@

$(BUILD)/tests/%.o: tests/%.cpp | $(SKELS)
	@mkdir -p $(@D)
	@echo "  CXX     $@"
	$(Q)$(CXX) $(CXXFLAGS) $(TEST_OPT) -c $< -o $@

# The test suites' own code is compiled without optimisation or debug info: 2.7x faster to
# build (run_test.cpp: 25 s at -O2 -g, 9.5 s at -O0), and what they test, libtardy and the
# tardy binary, stays -O2. The benchmarks and the test drivers (load generators) keep -O2.
$(BUILD)/tests/unit/%.o $(BUILD)/tests/bpf/%.o $(BUILD)/tests/integration/%.o: TEST_OPT := -O0 -g0

$(BUILD)/libtardy.a: $(LIB_OBJS)
	$(Q)ar rcs $@ $^

$(BUILD)/tardy: $(BUILD)/user/cli/main.o $(BUILD)/libtardy.a
	@echo "  LINK    $@"
	$(Q)$(CXX) -o $@ $^ $(LDLIBS)

test_objs = $(patsubst tests/%.cpp,$(BUILD)/tests/%.o,$(wildcard tests/$(1)/*.cpp))

# Test suites compiled in shares: the unit and integration suites' files are compiled a
# share at a time (build/unity/<suite>-<i>.cpp includes them; scripts/unity.sh), not one by
# one. Each of their 60-odd files spent 3-5 s of its 4-10 s compile on the same headers
# (GoogleTest, json, the harness), the whole build ~9 minutes on two cores; two shares a
# suite keep both cores busy. So names at file scope must be unique within a suite (a clash
# is a compile error, never a silent merge). GCC's precompiled headers were tried first:
# loading the 125-150 MB header cost as much as parsing it here.
UNITY_SHARES := 2
unity_objs = $(foreach i,$(shell seq 1 $(UNITY_SHARES)),$(BUILD)/unity/$(1)-$(i).o)
UNITY_SRCS := $(foreach s,unit integration,$(patsubst %.o,%.cpp,$(call unity_objs,$(s))))
.SECONDARY: $(UNITY_SRCS)

$(UNITY_SRCS): FORCE
	$(Q)scripts/unity.sh $(firstword $(subst -, ,$(notdir $(basename $@)))) $(UNITY_SHARES) \
	    $(lastword $(subst -, ,$(notdir $(basename $@)))) $@

$(BUILD)/unity/%.o: $(BUILD)/unity/%.cpp | $(SKELS)
	@echo "  CXX     $@ ($$(grep -c '^#include' $<) files)"
	$(Q)$(CXX) $(CXXFLAGS) -O0 -g0 -c $< -o $@

FORCE:
.PHONY: FORCE

$(BUILD)/unit_tests: $(call unity_objs,unit) $(BUILD)/libtardy.a
	$(Q)$(CXX) -o $@ $^ $(GTEST_LIBS) $(LDLIBS)
$(BUILD)/bpf_tests: $(call test_objs,bpf) $(BUILD)/libtardy.a
	$(Q)$(CXX) -o $@ $^ $(GTEST_LIBS) $(LDLIBS)
$(BUILD)/integration_tests: $(call unity_objs,integration) $(BUILD)/libtardy.a
	$(Q)$(CXX) -o $@ $^ $(GTEST_LIBS) $(LDLIBS)
$(BUILD)/tardy-testkit: $(call test_objs,tools) $(BUILD)/libtardy.a
	$(Q)$(CXX) -o $@ $^ $(LDLIBS)
$(BUILD)/tc_bench: $(BUILD)/tests/bench/tc_bench.o $(BUILD)/libtardy.a
	$(Q)$(CXX) -o $@ $^ $(LDLIBS)
$(BUILD)/syscall_bench: $(BUILD)/tests/bench/syscall_bench.o $(BUILD)/libtardy.a
	$(Q)$(CXX) -o $@ $^ $(LDLIBS)
$(BUILD)/metrics_bench: $(BUILD)/tests/bench/metrics_bench.o $(BUILD)/libtardy.a
	$(Q)$(CXX) -o $@ $^ $(LDLIBS)
$(BUILD)/bystander_bench: $(BUILD)/tests/bench/bystander_bench.o $(BUILD)/libtardy.a
	$(Q)$(CXX) -o $@ $^ $(LDLIBS)

$(BUILD):
	$(Q)mkdir -p $@

deps:
	$(Q)scripts/deps.sh

tests: $(BUILD)/tardy $(TEST_BINS)

# Host suite, then the stock-kernel VM suite; one summary line at the end.
test: deps
	$(Q)$(MAKE) --no-print-directory -j$(shell nproc) tests
	$(Q)scripts/run-tests.sh

vmtest: deps
	$(Q)$(MAKE) --no-print-directory -j$(shell nproc) tests
	$(Q)scripts/run-tests.sh --vm-only

vmshell: deps all
	$(Q)tests/vm/vm.sh shell

demo: deps
	$(Q)$(MAKE) --no-print-directory -j$(shell nproc) all
	$(Q)$(BUILD)/tardy demo

bench: deps
	$(Q)$(MAKE) --no-print-directory $(BUILD)/tc_bench $(BUILD)/syscall_bench $(BUILD)/metrics_bench
	$(Q)$(BUILD)/tc_bench
	$(Q)$(BUILD)/syscall_bench
	$(Q)$(BUILD)/metrics_bench
	$(Q)$(MAKE) --no-print-directory $(BUILD)/bystander_bench && $(BUILD)/bystander_bench

# An OCI image of the tardy binary (buildah, from scratch; deploy/kubernetes/, docs/kubernetes.md)
image: $(BUILD)/tardy
	$(Q)scripts/build-image.sh --binary $(BUILD)/tardy

clean:
	rm -rf $(BUILD)

.PHONY: all deps tests test vmtest vmshell demo bench image clean
# ---- install, uninstall, Debian package -------------------------------------------------------
# `make install` (PREFIX=/usr/local, DESTDIR for staging) puts the binary, tardy(1) and the
# bash completion (both generated from the binary's own --help, so they cannot drift from
# it), the agent's systemd unit and the docs in place; `make uninstall` removes exactly those
# files (and the doc directory if it is left empty). `make deb` builds
# $(BUILD)/tardy_$(VERSION)_amd64.deb (packaging/build-deb.sh; packaging/README.md).
VERSION     ?= $(shell sed -n 's/.*"tardy \([0-9][0-9.]*\)".*/\1/p' user/cli/main.cpp | head -1)
PREFIX      ?= /usr/local
BINDIR      ?= $(PREFIX)/bin
MANDIR      ?= $(PREFIX)/share/man
DOCDIR      ?= $(PREFIX)/share/doc/tardy
BASHCOMPDIR ?= $(PREFIX)/share/bash-completion/completions
UNITDIR     ?= $(PREFIX)/lib/systemd/system
DOCS        := README.md LICENSE $(wildcard LICENSES/*.txt) $(wildcard docs/*.md)
INSTALLED    = $(BINDIR)/tardy $(MANDIR)/man1/tardy.1 $(BASHCOMPDIR)/tardy $(UNITDIR)/tardy.service \
               $(addprefix $(DOCDIR)/,$(DOCS))

$(BUILD)/tardy.1: $(BUILD)/tardy packaging/gen-man.sh
	@echo "  MAN     $@"
	$(Q)packaging/gen-man.sh $(BUILD)/tardy > $@
$(BUILD)/tardy.bash-completion: $(BUILD)/tardy packaging/gen-completion.sh
	@echo "  COMP    $@"
	$(Q)packaging/gen-completion.sh $(BUILD)/tardy > $@
$(BUILD)/tardy.service: packaging/tardy.service.in | $(BUILD)
	$(Q)sed 's|@BINDIR@|$(BINDIR)|g' $< > $@

man: $(BUILD)/tardy.1

# The unit names BINDIR, so it is made afresh for each install (PREFIX may differ).
install: $(BUILD)/tardy $(BUILD)/tardy.1 $(BUILD)/tardy.bash-completion
	$(Q)sed 's|@BINDIR@|$(BINDIR)|g' packaging/tardy.service.in > $(BUILD)/tardy.service
	install -D -m 0755 $(BUILD)/tardy $(DESTDIR)$(BINDIR)/tardy
	install -D -m 0644 $(BUILD)/tardy.1 $(DESTDIR)$(MANDIR)/man1/tardy.1
	install -D -m 0644 $(BUILD)/tardy.bash-completion $(DESTDIR)$(BASHCOMPDIR)/tardy
	install -D -m 0644 $(BUILD)/tardy.service $(DESTDIR)$(UNITDIR)/tardy.service
	$(Q)for f in $(DOCS); do install -D -m 0644 $$f $(DESTDIR)$(DOCDIR)/$$f || exit 1; done

uninstall:
	rm -f $(addprefix $(DESTDIR),$(INSTALLED))
	-$(Q)rmdir $(DESTDIR)$(DOCDIR)/docs $(DESTDIR)$(DOCDIR)/LICENSES $(DESTDIR)$(DOCDIR) 2>/dev/null || true

deb: $(BUILD)/tardy $(BUILD)/tardy.1 $(BUILD)/tardy.bash-completion
	$(Q)packaging/build-deb.sh $(BUILD) $(VERSION)

.PHONY: man install uninstall deb

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
