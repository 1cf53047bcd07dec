# SPDX-License-Identifier: GPL-2.0
# Builds the guest userland: static test binaries and the initramfs.
# Invoked by harness/guest.sh with TOP, OUT, PRISTINE, HDR set.
G := $(OUT)/guest
ROOT := $(G)/root
SELF := $(PRISTINE)/tools/testing/selftests
OWNDIR := $(TOP)/tools/testing/selftests/mm
CC := gcc
TCFLAGS := -static -O2 -g -Wall -U_FORTIFY_SOURCE -I$(OWNDIR) -I$(G)/inc \
	-I$(PRISTINE) -I$(SELF) -I$(SELF)/mm \
	-isystem $(PRISTINE)/tools/include/uapi -isystem $(HDR)
TLIBS := -lnuma -lrt -lpthread -lm
UTIL := $(SELF)/mm/vm_util.c $(SELF)/mm/thp_settings.c
UTIL_H := $(SELF)/mm/vm_util.h $(SELF)/mm/thp_settings.h $(SELF)/kselftest.h

UPSTREAM := ksm_tests ksm_functional_tests cow
OWN := $(notdir $(basename $(wildcard $(OWNDIR)/ksm_*.c)))
BINS := $(addprefix $(G)/bin/,$(UPSTREAM) $(OWN) ksm_demo ksm_bench)
# tools/mm/ksmctl: libc only, installed as /usr/bin/ksmctl
KSMCTL := $(G)/bin/ksmctl

all: $(G)/initramfs.cpio.gz

$(G)/inc/local_config.h:
	@mkdir -p $(dir $@)
	@: >$@

$(G)/bin/%: $(SELF)/mm/%.c $(UTIL) $(UTIL_H) $(G)/inc/local_config.h
	@mkdir -p $(dir $@)
	@echo "  CC (upstream selftest) $*"
	@$(CC) $(TCFLAGS) -o $@ $< $(UTIL) $(TLIBS) 2>$@.log || { cat $@.log; exit 1; }

$(G)/bin/ksm_%: $(OWNDIR)/ksm_%.c $(wildcard $(OWNDIR)/*.h) $(UTIL) $(UTIL_H) $(G)/inc/local_config.h
	@mkdir -p $(dir $@)
	@echo "  CC (our selftest) ksm_$*"
	@$(CC) $(TCFLAGS) -Werror -o $@ $< $(UTIL) $(TLIBS) 2>$@.log || { cat $@.log; exit 1; }

$(G)/bin/ksm_demo: $(TOP)/harness/guest/ksm_demo.c $(TOP)/harness/guest/nested_vm.h $(OWNDIR)/ksm_common.h
	@mkdir -p $(dir $@)
	@echo "  CC ksm_demo"
	@$(CC) $(TCFLAGS) -Werror -o $@ $< $(TLIBS) 2>$@.log || { cat $@.log; exit 1; }

$(G)/bin/ksm_bench: $(TOP)/harness/guest/ksm_bench.c $(TOP)/harness/guest/nested_vm.h $(OWNDIR)/ksm_common.h
	@mkdir -p $(dir $@)
	@echo "  CC ksm_bench"
	@$(CC) $(TCFLAGS) -Werror -o $@ $< $(TLIBS) 2>$@.log || { cat $@.log; exit 1; }

$(KSMCTL): $(TOP)/tools/mm/ksmctl.c
	@mkdir -p $(dir $@)
	@echo "  CC ksmctl"
	@$(CC) -static -O2 -g -Wall -Wextra -Werror -o $@ $< 2>$@.log || { cat $@.log; exit 1; }

GUEST_FILES := $(TOP)/harness/guest/init $(TOP)/harness/guest/ksmt.sh \
	$(wildcard $(TOP)/harness/guest/plans/*.sh)

# The bin/ list is part of the image: a deleted test must leave it too.
$(G)/initramfs.cpio.gz: $(BINS) $(KSMCTL) $(GUEST_FILES) $(OUT)/guest/bins.list
	@echo "  INITRAMFS $@"
	@rm -rf $(ROOT) && mkdir -p $(ROOT)/bin $(ROOT)/sbin $(ROOT)/usr/bin \
		$(ROOT)/usr/sbin $(ROOT)/proc $(ROOT)/sys $(ROOT)/dev $(ROOT)/tmp \
		$(ROOT)/lib $(ROOT)/plans $(ROOT)/tests $(ROOT)/etc
	@cp /bin/busybox $(ROOT)/bin/busybox
	@for a in $$(/bin/busybox --list); do [ $$a = busybox ] || ln -sf busybox $(ROOT)/bin/$$a; done
	@install -m 755 $(TOP)/harness/guest/init $(ROOT)/init
	@install -m 644 $(TOP)/harness/guest/ksmt.sh $(ROOT)/lib/ksmt.sh
	@install -m 644 $(TOP)/harness/guest/plans/*.sh $(ROOT)/plans/
	@install -m 755 $(BINS) $(ROOT)/tests/
	@install -m 755 $(KSMCTL) $(ROOT)/usr/bin/ksmctl
	@echo "root:x:0:0:root:/:/bin/sh" >$(ROOT)/etc/passwd
	@(cd $(ROOT) && find . | cpio -o -H newc --quiet | gzip -1) >$@.tmp && mv $@.tmp $@

$(OUT)/guest/bins.list: FORCE
	@mkdir -p $(dir $@)
	@echo "$(BINS)" | cmp -s - $@ || echo "$(BINS)" >$@

FORCE:
.PHONY: all FORCE
