# SPDX-License-Identifier: GPL-2.0
# KSM for Linux 6.12: the one entry point. See README.md.
#
#   make test     debug kernel (ours): conformance + our selftests + torture slice
#   make run      release kernel (ours): the KSM demonstration, streamed, and
#                 out/run/saving.png (KERNEL=upstream; COMPARE=1 runs both)
#   make shell    interactive guest shell
#   make image    build one kernel; last line is the bzImage path
#   make stress   torture suite (DURATION=600 SEED=...)
#   make bench    ours vs upstream benchmark (QUICK=1 for a short one)
#   make patches  export the patch series into out/patches/
#   make fresh-check  rehearse a fresh Debian machine: make test + make run in
#                 a new minimal root (FRESH_REUSE=1 reuses it); not part of CI
#
# Variables: KERNEL=ours|upstream  FLAVOR=release|debug  ONLY="t1 t2"
#            DURATION=s  SEED=n  SCENARIOS=a,b OPS_OFF=op,op (stress)  TIMEOUT=s  KVM=1 (default: TCG)

KERNEL ?= ours
H := harness

export KERNEL ONLY DURATION SEED SCENARIOS OPS_OFF TIMEOUT KVM RETRY QUICK FRESH_REUSE COMPARE VMS

.PHONY: help deps image initramfs test conformance run shell stress bench \
	patches check-style fresh-check clean

help:
	@sed -n '2,16p' Makefile | sed 's/^# \{0,1\}//'

deps:
	@$(H)/deps.sh

image: deps
	@$(H)/build.sh $(KERNEL) $(or $(FLAVOR),debug)

initramfs: deps
	@$(H)/guest.sh

test: deps
	@FLAVOR=$(or $(FLAVOR),debug) $(H)/run.sh test

conformance: deps
	@FLAVOR=$(or $(FLAVOR),debug) $(H)/run.sh conformance

run: deps
	@$(H)/demo.sh

shell: deps
	@FLAVOR=$(or $(FLAVOR),release) INTERACTIVE=1 $(H)/shell.sh

stress: deps
	@FLAVOR=$(or $(FLAVOR),debug) DURATION=$(or $(DURATION),600) \
		TIMEOUT=$$(( $(or $(DURATION),600) * 3 + 900 )) $(H)/run.sh stress

bench: deps
	@$(H)/bench.sh

patches: deps
	@$(H)/patches.sh

check-style: deps
	@$(H)/check-style.sh

# Not `deps`: the host needs only debootstrap; the fresh root installs the rest.
fresh-check:
	@$(H)/deps.sh fresh
	@$(H)/fresh-check.sh

clean:
	rm -rf out/build out/runs out/guest out/patches out/patches-work out/bench
