# SPDX-License-Identifier: GPL-2.0
# Shared settings and helpers for the host harness. Sourced, never run.
set -euo pipefail

TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OUT=${OUT:-$TOP/out}
TARBALL=${TARBALL:-/usr/src/linux-source-6.12.tar.xz}
PRISTINE=$OUT/src/pristine
OURS=$OUT/src/ours
HDR=$OUT/hdr/include
JOBS=${JOBS:-$(nproc)}

# Files we own that replace (or add to) the base tree, relative to its top.
owned_files() {
	(cd "$TOP" && git ls-files -co --exclude-standard -- \
		mm/ksm.c include/linux/ksm.h include/trace/events/ksm.h \
		Documentation/admin-guide/mm/ksm.rst Documentation/mm/ksm.rst \
		'tools/testing/selftests/mm/ksm_*' tools/mm/ksmctl.c 2>/dev/null ||
	 (cd "$TOP" && ls mm/ksm.c include/linux/ksm.h \
		include/trace/events/ksm.h 2>/dev/null))
}

die() {
	echo "error: $*" >&2
	exit 1
}

note() {
	echo ">>> $*" >&2
}

check_kernel() {
	case "$1" in
	ours|upstream) ;;
	*) die "unknown KERNEL='$1' (use ours or upstream)" ;;
	esac
}

check_flavor() {
	case "$1" in
	release|debug) ;;
	*) die "unknown FLAVOR='$1' (use release or debug)" ;;
	esac
}

base_version() {
	[ -f "$PRISTINE/Makefile" ] || { echo "6.12.?"; return; }
	awk '/^VERSION =/{v=$3} /^PATCHLEVEL =/{p=$3} /^SUBLEVEL =/{s=$3}
	     END{printf "%s.%s.%s\n", v, p, s}' "$PRISTINE/Makefile"
}

builddir() {
	echo "$OUT/build/$1-$2"
}
