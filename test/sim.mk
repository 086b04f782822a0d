# The simulated guest's toolkit (test/xen-sim, test/vsnd-config, test/xensim/create-domain) and the
# backend's scripted-frontend tests (test/sndback/tests/). Test programs link Debian's real Xen
# libraries, so the very same binaries run on real Xen; in the simulation, in-domain swaps in the
# look-alike libevtchn/libgnttab with LD_LIBRARY_PATH.
SIM_TESTS_DIR = test/sndback/tests
SIM_PROGS = $(BUILD)/sndback-tests/fe-script
SIM_TESTS = $(SIM_TESTS_DIR)/test-vsnd-config $(SIM_TESTS_DIR)/test-handshake \
            $(SIM_TESTS_DIR)/test-playback $(SIM_TESTS_DIR)/test-capture \
            $(SIM_TESTS_DIR)/test-query $(SIM_TESTS_DIR)/test-reconnect \
            $(SIM_TESTS_DIR)/test-malformed $(SIM_TESTS_DIR)/test-faults \
            $(SIM_TESTS_DIR)/test-xen-sim

.PHONY: sim-progs
all: $(SIM_PROGS)
sim-progs: $(SIM_PROGS)

$(BUILD)/sndback-tests/%: $(SIM_TESTS_DIR)/%.c
	@mkdir -p $(@D)
	$(CC) $(CFLAGS_COMMON) -o $@ $< $(LDFLAGS_COMMON) $(XEN_LIBS)

# `make -s print-SIM_TESTS` prints a variable (for test/run-tests command lines).
print-%:
	@echo $($*)
