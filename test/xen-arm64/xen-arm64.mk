# make test-xen-arm64: the plugin on real arm64 Xen (issue 15; README.md, "Supported architectures").
# Fetches Debian 12's arm64 packages into $(XA_BUILD) (test/xen-arm64/fetch-debs: a private apt
# configuration, cached: a second run is offline), cross-builds the plugins, sndback and wav-data for arm64
# with the host's clang and lld against that sysroot (same sources and warnings as the native build), boots
# Xen 4.17 arm64 under qemu-system-aarch64 and runs test/xen/cases/10-kernel-frontend.sh and
# test/xen-arm64/cases/40-plugin.sh in an arm64 domU (test/xen/run --arch arm64).
# Needs root the first time (it installs the host packages below); XT_ONLY=GLOB runs only matching case files.
XA_SRC   = test/xen-arm64
XA_BUILD = $(BUILD)/arm64
XEN_ARM64_TEST_PACKAGES = qemu-system-arm clang lld binutils busybox-static cpio kmod sox xz-utils
# The cases test/xen/run must see: dom0's setup 3, kernel frontend 11, plugin 15.
XA_PLAN  = 29
XA_CC    = clang --target=aarch64-linux-gnu --sysroot=$(abspath $(XA_BUILD))/sysroot -fuse-ld=lld
XA_BINS  = $(XA_BUILD)/libasound_module_pcm_xen.so $(XA_BUILD)/libasound_module_ctl_xen.so \
           $(XA_BUILD)/sndback $(XA_BUILD)/test-xen/bin/wav-data

.PHONY: test-xen-arm64
test-xen-arm64:
	@test/deps $(XEN_ARM64_TEST_PACKAGES) || { echo "test-xen-arm64: cannot run: the packages above are missing (run as root once)"; exit 1; }
	@$(XA_SRC)/fetch-debs $(XA_BUILD) || { echo "FAIL: xen-arm64/fetch-debs: the arm64 packages could not be fetched"; echo "0 passed, 1 failed"; exit 1; }
	@# The arm64 build: the native rules with the cross compiler; pkg-config would answer for the host.
	@# A piece that does not build is reported by the cases that need it (as FAIL lines).
	$(MAKE) -k BUILD=$(XA_BUILD) CC="$(XA_CC)" ALSA_CFLAGS= ALSA_LIBS=-lasound SNDFILE_LIBS=-lsndfile \
	    XEN_LIBS="-lxenstore -lxenevtchn -lxengnttab" $(XA_BINS) || echo "test-xen-arm64: some of $(XA_BINS) did not build"
	@# Bounded: QEMU is killed after XT_TIMEOUT s (a run takes 2-3 min; test/xen/run's default is 1500).
	XT_TIMEOUT=$${XT_TIMEOUT:-600} test/xen/run --build $(XA_BUILD) --arch arm64 $(if $(XT_ONLY),--only '$(XT_ONLY)',--plan $(XA_PLAN))

# make test-xen-arm64-16k: the same dom0, a domU on Debian's 16 KiB-page arm64 kernel; the plugin must
# refuse at open with one line (test/xen-arm64/cases-16k/60-page-size.sh; README.md, "Supported
# architectures"). QEMU's cortex-a57 has no 16K granule: cortex-a76 here.
XA_16K_META = linux-image-6.12-arm64-16k
XA_16K_PLAN = 7
.PHONY: test-xen-arm64-16k
test-xen-arm64-16k:
	@test/deps $(XEN_ARM64_TEST_PACKAGES) || { echo "test-xen-arm64-16k: cannot run: the packages above are missing (run as root once)"; exit 1; }
	@$(XA_SRC)/fetch-debs $(XA_BUILD) --kernel $(XA_16K_META) $(XA_BUILD)/kernel-16k || { echo "FAIL: xen-arm64/fetch-debs: the arm64 packages could not be fetched"; echo "0 passed, 1 failed"; exit 1; }
	$(MAKE) -k BUILD=$(XA_BUILD) CC="$(XA_CC)" ALSA_CFLAGS= ALSA_LIBS=-lasound SNDFILE_LIBS=-lsndfile \
	    XEN_LIBS="-lxenstore -lxenevtchn -lxengnttab" $(XA_BINS) || echo "test-xen-arm64-16k: some of $(XA_BINS) did not build"
	XA_DOMU_KERNEL=$(abspath $(XA_BUILD))/kernel-16k XA_CASE_FILES=$(abspath $(XA_SRC))/cases-16k/60-page-size.sh \
	    XT_ARM64_CPU=cortex-a76 XT_TIMEOUT=$${XT_TIMEOUT:-300} test/xen/run --build $(XA_BUILD) --arch arm64 --plan $(XA_16K_PLAN)
