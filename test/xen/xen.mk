# make test-xen: the real hypervisor as the judge (README.md, "Tested on real Xen"). Boots Debian's Xen 4.17,
# a PV dom0 and a PV domU under QEMU and runs test/xen/cases/*.sh there. Needs root the first time
# (it installs the Debian packages below); XT_ONLY=GLOB runs only the matching case files.
XT_SRC = test/xen
XEN_TEST_PACKAGES = qemu-system-x86 xen-hypervisor-4.17-amd64 xen-utils-4.17 linux-image-amd64 \
                    busybox-static cpio kmod alsa-utils sox
# What the images are assembled from (besides Debian's packages).
XEN_TEST_BINS = $(BUILD)/test-xen/bin/wav-data $(BUILD)/test-xen/bin/handoff-probe $(BUILD)/sndback $(PLUGIN) \
                $(BUILD)/xensim-tests/xs-txn $(BUILD)/xensim-tests/evtchn-peer $(BUILD)/xensim-tests/gnt-peer \
                $(BUILD)/pcm-positions $(SBE_BIN) $(SBE_CLOCK) $(SBE_HTSTAMP)

# wav-data is also built by `make all` and checked by `make check` (both builds).
XEN_TESTS = $(XT_SRC)/test-wav-data
CHECK_TESTS += $(XEN_TESTS)
all: $(BUILD)/test-xen/bin/wav-data $(BUILD)/test-xen/bin/handoff-probe

.PHONY: test-xen bench-xen
test-xen:
	@test/deps $(XEN_TEST_PACKAGES) || { echo "test-xen: cannot run: the packages above are missing (run as root once)"; exit 1; }
	@# A piece that does not build is reported by the cases that need it (as FAIL lines).
	$(MAKE) -k $(XEN_TEST_BINS) || echo "test-xen: some of $(XEN_TEST_BINS) did not build"
	$(XT_SRC)/run --build $(BUILD) $(if $(XT_ONLY),--only '$(XT_ONLY)')

$(BUILD)/test-xen/bin/wav-data: $(XT_SRC)/wav-data.c
	@mkdir -p $(@D)
	$(CC) $(CFLAGS_COMMON) -o $@ $< $(LDFLAGS_COMMON)

# Real Xen only (case file 60): the descriptor handoff README's multi-process design rests on.
$(BUILD)/test-xen/bin/handoff-probe: $(XT_SRC)/handoff-probe.c
	@mkdir -p $(@D)
	$(CC) $(CFLAGS_COMMON) -o $@ $< $(LDFLAGS_COMMON) $(XEN_LIBS)

# make bench-xen: the plugin against the kernel's snd_xen_front on the same real Xen (not in CI;
# test/xen/bench-xen, bench/results-xen.md).
bench-xen:
	@test/deps $(XEN_TEST_PACKAGES) || { echo "bench-xen: cannot run: the packages above are missing (run as root once)"; exit 1; }
	$(MAKE) -k $(XEN_TEST_BINS) || echo "bench-xen: some of $(XEN_TEST_BINS) did not build"
	$(XT_SRC)/bench-xen $(BUILD)
