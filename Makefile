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
CXXFLAGS   ?= -O2 -g
CXXFLAGS   += -std=c++20 -Wall -Wextra -Werror -Iinclude -Iuser -I$(BUILD) -MMD -MP
LDLIBS     := -lbpf -lelf -lz -lmnl -pthread
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
	$(Q)$(CXX) $(CXXFLAGS) -c $< -o $@

$(BUILD)/libtardy.a: $(LIB_OBJS)
	$(Q)ar rcs $@ $^

$(BUILD)/tardy: $(BUILD)/user/cli/main.o $(BUILD)/libtardy.a
	@echo "  LINK    $@"
	$(Q)$(CXX) -o $@ $^ $(LDLIBS)

test_objs = $(patsubst tests/%.cpp,$(BUILD)/tests/%.o,$(wildcard tests/$(1)/*.cpp))

$(BUILD)/unit_tests: $(call test_objs,unit) $(BUILD)/libtardy.a
	$(Q)$(CXX) -o $@ $^ $(GTEST_LIBS) $(LDLIBS)
$(BUILD)/bpf_tests: $(call test_objs,bpf) $(BUILD)/libtardy.a
	$(Q)$(CXX) -o $@ $^ $(GTEST_LIBS) $(LDLIBS)
$(BUILD)/integration_tests: $(call test_objs,integration) $(BUILD)/libtardy.a
	$(Q)$(CXX) -o $@ $^ $(GTEST_LIBS) $(LDLIBS)
$(BUILD)/tardy-testkit: $(call test_objs,tools) $(BUILD)/libtardy.a
	$(Q)$(CXX) -o $@ $^ $(LDLIBS)
$(BUILD)/tc_bench: $(BUILD)/tests/bench/tc_bench.o $(BUILD)/libtardy.a
	$(Q)$(CXX) -o $@ $^ $(LDLIBS)
$(BUILD)/syscall_bench: $(BUILD)/tests/bench/syscall_bench.o $(BUILD)/libtardy.a
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
	$(Q)$(MAKE) --no-print-directory $(BUILD)/tc_bench $(BUILD)/syscall_bench
	$(Q)$(BUILD)/tc_bench
	$(Q)$(BUILD)/syscall_bench

clean:
	rm -rf $(BUILD)

.PHONY: all deps tests test vmtest vmshell demo bench clean
-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
