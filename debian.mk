# make deb (issue 13): libasound2-plugin-xen_<VERSION>_<arch>.deb and its native source package, built
# with dpkg-buildpackage from debian/ in a copy of the tree (build/deb/src/), so the source tree
# stays clean; everything lands in build/deb/ (always the plain build's, whatever BUILD says).
# The version lives in VERSION; debian/changelog's top entry must say the same (checked here).
# lintian's verdict on the .deb and the source package goes to build/deb/lintian.txt; any E: or W:
# line fails `make deb` (remaining tags are overridden in debian/, each with its reason).
DEB_PACKAGES += debhelper dpkg-dev lintian fakeroot
DEB_VERSION  := $(shell cat VERSION 2>/dev/null)
DEB_ARCH     := $(shell dpkg --print-architecture 2>/dev/null)
DEB_DIR       = build/deb
DEB_NAME      = libasound2-plugin-xen
DEB_FILE      = $(DEB_DIR)/$(DEB_NAME)_$(DEB_VERSION)_$(DEB_ARCH).deb
# What goes into the package: the files the build copies (a change to any of them rebuilds it).
DEB_INPUTS    = VERSION Makefile ctl.mk debian.mk $(PLUGIN_SRC) $(PLUGIN_HDR) $(CTL_SRC) conf/50-pcm-xen.conf \
                conf/90-pcm-xen.rules README.md asoundrc.example $(wildcard debian/* debian/source/*)

.PHONY: deb
deb: $(DEB_FILE)

$(DEB_FILE): $(DEB_INPUTS)
	@test -n "$(DEB_VERSION)" || { echo "deb: VERSION is missing or empty" >&2; exit 1; }
	@cl=$$(dpkg-parsechangelog -l debian/changelog -SVersion) && [ "$$cl" = "$(DEB_VERSION)" ] || \
	    { echo "deb: debian/changelog says $$cl, VERSION says $(DEB_VERSION): add a changelog entry (dch -v $(DEB_VERSION))" >&2; exit 1; }
	rm -rf $(DEB_DIR) && mkdir -p $(DEB_DIR)/src/$(DEB_NAME)-$(DEB_VERSION)
	@# The tracked and new (not ignored) files as they are in the work tree; a plain copy without git.
	if git rev-parse --git-dir >/dev/null 2>&1; then \
	    git ls-files -z --cached --others --exclude-standard | \
	        xargs -0 sh -c 'for f; do [ -e "$$f" ] && printf "%s\0" "$$f"; done' sh; \
	else find . -path ./build -prune -o -path ./.git -prune -o -type f -print0; fi | \
	    tar --null -T - -cf - | tar -xf - -C $(DEB_DIR)/src/$(DEB_NAME)-$(DEB_VERSION)
	cd $(DEB_DIR)/src/$(DEB_NAME)-$(DEB_VERSION) && dpkg-buildpackage -us -uc >../../dpkg-buildpackage.log 2>&1 || \
	    { tail -n 30 $(DEB_DIR)/dpkg-buildpackage.log >&2; exit 1; }
	find $(DEB_DIR)/src -maxdepth 1 -type f -exec mv {} $(DEB_DIR)/ \;
	rm -rf $(DEB_DIR)/src
	lintian --info --display-info --pedantic $(DEB_DIR)/$(DEB_NAME)_$(DEB_VERSION)_$(DEB_ARCH).changes \
	    >$(DEB_DIR)/lintian.txt 2>&1; \
	    cat $(DEB_DIR)/lintian.txt; \
	    if grep -q '^[EW]: ' $(DEB_DIR)/lintian.txt; then \
	        echo "deb: lintian reports errors or warnings (above, $(DEB_DIR)/lintian.txt)" >&2; \
	        mv $@ $@.rejected; exit 1; fi
	@echo "deb: $@"

# test/deb/test-deb: make deb, lintian, the package installed into a throw-away root and played and
# recorded through in a simulated guest with no asoundrc, then purged (both builds; see its header).
CHECK_TESTS += test/deb/test-deb

# make test-xen: the domU installs the package with dpkg -i (test/xen/cases/40-plugin.sh, domu-init).
XEN_TEST_BINS += $(DEB_FILE)
