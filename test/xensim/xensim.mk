# xensim: the simulated Xen host (test/xensim/README.md).
XSIM_SRC = test/xensim
XENSIM_BINS = $(BUILD)/xensimd $(BUILD)/xensim/libxenevtchn.so.1 $(BUILD)/xensim/libxengnttab.so.1 \
              $(BUILD)/xensim-tests/xs-txn $(BUILD)/xensim-tests/evtchn-peer $(BUILD)/xensim-tests/gnt-peer
XENSIM_TESTS = $(XSIM_SRC)/test-xenstore $(XSIM_SRC)/test-evtchn $(XSIM_SRC)/test-gnttab $(XSIM_SRC)/test-symbols

all: $(XENSIM_BINS)

$(BUILD)/xensimd: $(XSIM_SRC)/xensimd.c $(XSIM_SRC)/xs_server.c $(XSIM_SRC)/broker.c $(XSIM_SRC)/xensimd.h $(XSIM_SRC)/xsim_proto.h
	@mkdir -p $(@D)
	$(CC) $(CFLAGS_COMMON) -o $@ $(filter %.c,$^) $(LDFLAGS_COMMON)

# The look-alike libraries are loaded into any program (Debian's tools, aplay), so they are
# built without sanitizers; their symbol versions come from the .map files (see test-symbols).
$(BUILD)/xensim/libxenevtchn.so.1: $(XSIM_SRC)/libxenevtchn.c $(XSIM_SRC)/libxenevtchn.map $(XSIM_SRC)/xsim_client.c $(XSIM_SRC)/xsim_client.h $(XSIM_SRC)/xsim_proto.h
	@mkdir -p $(@D)
	$(CC) -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror $(OPT) -fPIC -shared -Wl,-soname,libxenevtchn.so.1 \
	    -Wl,--version-script=$(XSIM_SRC)/libxenevtchn.map -o $@ $(XSIM_SRC)/libxenevtchn.c $(XSIM_SRC)/xsim_client.c

$(BUILD)/xensim/libxengnttab.so.1: $(XSIM_SRC)/libxengnttab.c $(XSIM_SRC)/libxengnttab.map $(XSIM_SRC)/xsim_client.c $(XSIM_SRC)/xsim_client.h $(XSIM_SRC)/xsim_proto.h
	@mkdir -p $(@D)
	$(CC) -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror $(OPT) -fPIC -shared -Wl,-soname,libxengnttab.so.1 \
	    -Wl,--version-script=$(XSIM_SRC)/libxengnttab.map -o $@ $(XSIM_SRC)/libxengnttab.c $(XSIM_SRC)/xsim_client.c

# Test programs link Debian's real libraries: the same binaries run on real Xen (make test-xen).
$(BUILD)/xensim-tests/%: $(XSIM_SRC)/tests/%.c $(XSIM_SRC)/tests/peer-report.h
	@mkdir -p $(@D)
	$(CC) $(CFLAGS_COMMON) -o $@ $< $(LDFLAGS_COMMON) $(XEN_LIBS)
