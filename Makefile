# pcm_xen — everything builds into $(BUILD); see README.md.
#   make          build the plugin, the simulation and the reference backend
#   make demo     install missing packages (as root), build, play a tone through the plugin
#   make check    the same set-up, then every test (plain build, then ASan+UBSan build)
BUILD   ?= build
CC      ?= cc
OPT     ?= -O2 -g
SAN     ?=
ifeq ($(SAN),1)
SANFLAGS = -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
endif
CFLAGS_COMMON = -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror $(OPT) $(SANFLAGS)
LDFLAGS_COMMON = $(SANFLAGS)
XEN_LIBS = $(shell pkg-config --libs xenstore xenevtchn xengnttab 2>/dev/null || echo -lxenstore -lxenevtchn -lxengnttab)

# Debian packages the project builds and tests with (checked by `make deps`).
DEB_PACKAGES = build-essential pkg-config clang libasound2-dev libxen-dev xenstore-utils \
               alsa-utils libsndfile1-dev sox libsox-fmt-all python3

.PHONY: all deps check test demo clean install uninstall bench mutants
all:

# The plugin: libasound_module_pcm_xen.so (-DPIC: alsa-lib's dlsym versioning needs it).
PLUGIN     = $(BUILD)/libasound_module_pcm_xen.so
PLUGIN_SRC = pcm_xen.c xs_config.c ring.c shbuf.c keeper.c
PLUGIN_HDR = xs_config.h ring.h shbuf.h keeper.h
ALSA_CFLAGS = $(shell pkg-config --cflags alsa)
ALSA_LIBS   = $(shell pkg-config --libs alsa 2>/dev/null || echo -lasound)
ifneq ($(SAN),1)
PLUGIN_LDFLAGS = -Wl,-z,defs
endif
all: $(PLUGIN)
$(PLUGIN): $(PLUGIN_SRC) $(PLUGIN_HDR)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS_COMMON) $(ALSA_CFLAGS) -fPIC -DPIC -shared -o $@ $(PLUGIN_SRC) \
	    $(LDFLAGS_COMMON) $(PLUGIN_LDFLAGS) $(ALSA_LIBS) $(XEN_LIBS) -lpthread

include test/xensim/xensim.mk
-include test/sndback/sndback.mk
-include test/sim.mk
-include test/xen/xen.mk
-include test/xen-arm64/xen-arm64.mk

# Every test program/script; each prints its PLAN: line and PASS:/FAIL: lines, test/run-tests adds
# them up and holds each to its plan (test/run-tests-selftest checks that it does).
CHECK_TESTS += test/run-tests-selftest $(XENSIM_TESTS) $(SNDBACK_UNIT_TESTS) $(SIM_TESTS)

# make install: the plugin into alsa-lib's plugin directory, pcm.xen/pcm.xen_raw into conf.d.
ALSA_PLUGIN_DIR ?= $(shell pkg-config --variable=libdir alsa 2>/dev/null || echo /usr/lib/x86_64-linux-gnu)/alsa-lib
ALSA_CONF_DIR   ?= /etc/alsa/conf.d
install: $(PLUGIN)
	install -D -m 0644 $(PLUGIN) $(DESTDIR)$(ALSA_PLUGIN_DIR)/libasound_module_pcm_xen.so
	install -D -m 0644 $(CTL_PLUGIN) $(DESTDIR)$(ALSA_PLUGIN_DIR)/libasound_module_ctl_xen.so
	install -D -m 0644 conf/50-pcm-xen.conf $(DESTDIR)$(ALSA_CONF_DIR)/50-pcm-xen.conf
uninstall:
	rm -f $(DESTDIR)$(ALSA_PLUGIN_DIR)/libasound_module_pcm_xen.so $(DESTDIR)$(ALSA_PLUGIN_DIR)/libasound_module_ctl_xen.so \
	      $(DESTDIR)$(ALSA_CONF_DIR)/50-pcm-xen.conf

# Unit tests of the plugin's pure parts (no Xen needed).
UNIT_TESTS = $(BUILD)/unit/test-xs-config $(BUILD)/unit/test-ring $(BUILD)/unit/test-bridge
all: $(UNIT_TESTS)
$(BUILD)/unit/test-xs-config: test/unit/test-xs-config.c xs_config.c xs_config.h
	@mkdir -p $(@D)
	$(CC) $(CFLAGS_COMMON) $(ALSA_CFLAGS) -I. -o $@ test/unit/test-xs-config.c xs_config.c $(LDFLAGS_COMMON) $(ALSA_LIBS) $(XEN_LIBS)
# ring.c over a ring page of the test's own (it links the Xen libraries, never calls them).
$(BUILD)/unit/test-ring: test/unit/test-ring.c test/unit/unit-check.h ring.c ring.h
	@mkdir -p $(@D)
	$(CC) $(CFLAGS_COMMON) $(ALSA_CFLAGS) -I. -o $@ test/unit/test-ring.c ring.c $(LDFLAGS_COMMON) $(ALSA_LIBS) $(XEN_LIBS)
# ring.c's bridge and settle (the keeper's, keeper.c) over pages of the test's own.
$(BUILD)/unit/test-bridge: test/unit/test-bridge.c test/unit/unit-check.h ring.c ring.h
	@mkdir -p $(@D)
	$(CC) $(CFLAGS_COMMON) $(ALSA_CFLAGS) -I. -o $@ test/unit/test-bridge.c ring.c $(LDFLAGS_COMMON) $(ALSA_LIBS) $(XEN_LIBS)
CHECK_TESTS += test/unit/run-unit
# A full-duplex client for the demo (one process plays and records, as a card allows).
$(BUILD)/duplex: test/plugin/duplex.c
	@mkdir -p $(@D)
	$(CC) $(CFLAGS_COMMON) $(ALSA_CFLAGS) -o $@ $< $(LDFLAGS_COMMON) $(ALSA_LIBS) -lpthread
all: $(BUILD)/duplex
$(BUILD)/pcm-behaviour: test/plugin/pcm-behaviour.c test/plugin/case-result.h
	@mkdir -p $(@D)
	$(CC) $(CFLAGS_COMMON) $(ALSA_CFLAGS) -o $@ $< $(LDFLAGS_COMMON) $(ALSA_LIBS)
all: $(BUILD)/pcm-behaviour
$(BUILD)/pagesize-shim.so: test/plugin/pagesize-shim.c
	@mkdir -p $(@D)
	$(CC) $(CFLAGS_COMMON) -fPIC -shared -o $@ $< $(LDFLAGS_COMMON) -ldl
all: $(BUILD)/pagesize-shim.so
$(BUILD)/lockgap-shim.so: test/plugin/lockgap-shim.c
	@mkdir -p $(@D)
	$(CC) $(CFLAGS_COMMON) -fPIC -shared -o $@ $< $(LDFLAGS_COMMON) -ldl -lpthread
all: $(BUILD)/lockgap-shim.so
$(BUILD)/pcm-threads: test/plugin/pcm-threads.c test/plugin/case-result.h
	@mkdir -p $(@D)
	$(CC) $(CFLAGS_COMMON) $(ALSA_CFLAGS) -o $@ $< $(LDFLAGS_COMMON) $(ALSA_LIBS) -lpthread
all: $(BUILD)/pcm-threads
# ThreadSanitizer (issue 10): the plugin and pcm-threads only, always in build/tsan (alsa-lib loads
# the plugin under another type name there); test/plugin/test-threads runs them after the plain run.
TSAN_DIR   = build/tsan
TSAN_FLAGS = -fsanitize=thread -fno-omit-frame-pointer
# gcc warns that TSan does not model atomic_thread_fence: ring.h's fences order the shared pages
# for the backend, another domain that TSan does not see anyway.
TSAN_WARN  = $(shell $(CC) -Werror -Wno-tsan -E -x c /dev/null >/dev/null 2>&1 && echo -Wno-tsan)
$(TSAN_DIR)/libasound_module_pcm_xen.so: $(PLUGIN_SRC) $(PLUGIN_HDR)
	@mkdir -p $(@D)
	$(CC) -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror $(TSAN_WARN) -O1 -g $(TSAN_FLAGS) $(ALSA_CFLAGS) -fPIC -DPIC -shared \
	    -o $@ $(PLUGIN_SRC) $(TSAN_FLAGS) $(ALSA_LIBS) $(XEN_LIBS) -lpthread
$(TSAN_DIR)/pcm-threads: test/plugin/pcm-threads.c test/plugin/case-result.h
	@mkdir -p $(@D)
	$(CC) -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -O1 -g $(TSAN_FLAGS) $(ALSA_CFLAGS) -o $@ $< \
	    $(TSAN_FLAGS) $(ALSA_LIBS) -lpthread
ifneq ($(SAN),1)
all: $(TSAN_DIR)/libasound_module_pcm_xen.so $(TSAN_DIR)/pcm-threads
endif
$(BUILD)/pcm-positions: test/plugin/pcm-positions.c test/plugin/case-result.h
	@mkdir -p $(@D)
	$(CC) $(CFLAGS_COMMON) $(ALSA_CFLAGS) -o $@ $< $(LDFLAGS_COMMON) $(ALSA_LIBS)
all: $(BUILD)/pcm-positions

$(BUILD)/pcm-bench: test/bench/pcm-bench.c
	@mkdir -p $(@D)
	$(CC) $(CFLAGS_COMMON) $(ALSA_CFLAGS) -o $@ $< $(LDFLAGS_COMMON) $(ALSA_LIBS)
all: $(BUILD)/pcm-bench
# make bench's allocation counter (an LD_PRELOAD malloc wrapper: never in the sanitizer build).
$(BUILD)/alloc-count.so: test/bench/alloc-count.c
	@mkdir -p $(@D)
	$(CC) $(CFLAGS_COMMON) -fPIC -shared -o $@ $< $(LDFLAGS_COMMON) -ldl
ifneq ($(SAN),1)
all: $(BUILD)/alloc-count.so
endif

# make mutants: one-line faults put into a copy of the plugin, each of which the plugin tests
# must catch (test/mutants; minutes, not in make check).
mutants: all
	test/mutants

# make bench: figures and ratios measured in one run (test/bench/run); timing lives only here.
bench: all
	test/bench/run

demo: deps
	$(MAKE) all
	test/demo

# End-to-end: unmodified aplay/arecord through the plugin, in a simulated guest (test/xen-sim).
PLUGIN_TESTS = test/plugin/test-playback test/plugin/test-capture test/plugin/test-negotiation \
               test/plugin/test-lifecycle test/plugin/test-faults test/plugin/test-behaviour \
               test/plugin/test-config test/plugin/test-positions test/plugin/test-threads \
               test/plugin/test-formats test/plugin/test-restart test/plugin/test-bigbuffer test/plugin/test-share
CHECK_TESTS += $(PLUGIN_TESTS)

# Interoperability (issue 9): xen-troops snd_be as the backend, sound servers and applications on top,
# the control plugin. Each part keeps its build rules and tests in its own file.
-include test/snd_be/snd_be.mk
-include test/apps/apps.mk
-include ctl.mk
# The Debian package (issue 13): make deb, its test in make check.
-include debian.mk

deps:
	@test/deps $(DEB_PACKAGES)

# Both builds use the machine's two cores (CI has two; the build is a minute of make check's twenty).
check: deps
	$(MAKE) -j2 all
	$(MAKE) -j2 BUILD=build/asan SAN=1 all
	test/run-tests --build $(BUILD) --build-asan build/asan $(CHECK_TESTS)

test: all
	test/run-tests --build $(BUILD) $(CHECK_TESTS)

clean:
	rm -rf build
