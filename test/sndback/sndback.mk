# sndback: the reference sndif backend (test/sndback/README.md).
SBK_SRC = test/sndback
# Modules without Xen or I/O, shared by sndback and its unit test.
SBK_PURE = $(SBK_SRC)/sbk_log.c $(SBK_SRC)/sbk_parse.c $(SBK_SRC)/sbk_names.c $(SBK_SRC)/sbk_format.c \
           $(SBK_SRC)/sbk_limits.c $(SBK_SRC)/sbk_options.c $(SBK_SRC)/sbk_config.c $(SBK_SRC)/sbk_fifo.c
SBK_IO = $(SBK_SRC)/sbk_audio.c $(SBK_SRC)/sbk_xen.c $(SBK_SRC)/sbk_ring.c $(SBK_SRC)/sbk_stream.c \
         $(SBK_SRC)/sbk_bus.c $(SBK_SRC)/sbk_main.c
SBK_HEADERS = $(wildcard $(SBK_SRC)/*.h)
SNDFILE_LIBS = $(shell pkg-config --libs sndfile 2>/dev/null || echo -lsndfile)

SNDBACK_BINS = $(BUILD)/sndback $(BUILD)/sndback-unit
# The unit test of the pure modules (a script, so that it runs against both builds).
SNDBACK_UNIT_TESTS = $(SBK_SRC)/unit/test-sndback-unit

all: $(SNDBACK_BINS)

$(BUILD)/sndback: $(SBK_PURE) $(SBK_IO) $(SBK_HEADERS)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS_COMMON) -o $@ $(SBK_PURE) $(SBK_IO) $(LDFLAGS_COMMON) $(XEN_LIBS) $(SNDFILE_LIBS) -lm

$(BUILD)/sndback-unit: $(SBK_SRC)/unit/sbk_unit.c $(SBK_PURE) $(SBK_SRC)/sbk_audio.c $(SBK_HEADERS)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS_COMMON) -I$(SBK_SRC) -o $@ $(SBK_SRC)/unit/sbk_unit.c $(SBK_PURE) $(SBK_SRC)/sbk_audio.c \
	    $(LDFLAGS_COMMON) $(SNDFILE_LIBS) -lm
