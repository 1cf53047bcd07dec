#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Prepare the source trees:
#   out/src/pristine  the base tarball, extracted once, never modified
#   out/src/ours      hard links to pristine + symlinks to the files we own +
#                     our patches (files a patch touches are private copies)
# Usage: tree.sh pristine|ours
. "$(dirname "$0")/lib.sh"

extract_pristine() {
	[ -f "$PRISTINE/.ksm-pristine-ok" ] && return 0
	[ -f "$TARBALL" ] || die "base tarball $TARBALL is missing (package linux-source-6.12)"
	note "extracting $TARBALL"
	rm -rf "$OUT/src/.extract"
	mkdir -p "$OUT/src/.extract"
	tar -xJf "$TARBALL" -C "$OUT/src/.extract" 2>"$OUT/src/.extract.err" ||
		{ tail -3 "$OUT/src/.extract.err" >&2; die "base tarball $TARBALL is corrupt (tar failed)"; }
	local d
	d=$(find "$OUT/src/.extract" -mindepth 1 -maxdepth 1 -type d | head -n 1)
	[ -n "$d" ] && [ -f "$d/Makefile" ] && [ -f "$d/mm/ksm.c" ] ||
		die "base tarball $TARBALL does not hold a kernel tree"
	rm -rf "$PRISTINE"
	mv "$d" "$PRISTINE"
	rm -rf "$OUT/src/.extract" "$OUT/src/.extract.err"
	touch "$PRISTINE/.ksm-pristine-ok"
}

# A stamp of everything that shapes the ours tree except owned file contents
# (those are symlinks: an edit shows through without re-preparing).
ours_stamp() {
	{
		owned_files
		cat "$TOP"/patches/*.patch 2>/dev/null || true
	} | sha1sum | cut -d' ' -f1
}

patched_files() {
	local p
	for p in "$TOP"/patches/*.patch; do
		[ -f "$p" ] || continue
		grep -E '^\+\+\+ b/' "$p" | sed 's|^+++ b/||'
	done | sort -u
}

prepare_ours() {
	local stamp f old_patched new_patched
	stamp=$(ours_stamp)
	if [ -f "$OURS/.ksm-stamp" ] && [ "$(cat "$OURS/.ksm-stamp")" = "$stamp" ]; then
		return 0
	fi
	note "preparing our tree (base $(base_version))"
	old_patched=$({ cat "$OURS/.ksm-patched" 2>/dev/null || true; } | tr "\n" " ")
	rm -rf "$OURS.new"
	cp -al "$PRISTINE" "$OURS.new"
	rm -f "$OURS.new/.ksm-pristine-ok"
	for f in $(owned_files); do
		mkdir -p "$OURS.new/$(dirname "$f")"
		rm -f "$OURS.new/$f"
		ln -s "$TOP/$f" "$OURS.new/$f"
	done
	new_patched=$(patched_files | tr "\n" " ")
	for f in $new_patched; do
		if [ -e "$OURS.new/$f" ]; then
			cp --remove-destination "$PRISTINE/$f" "$OURS.new/$f.tmp"
			mv -f "$OURS.new/$f.tmp" "$OURS.new/$f"
			chmod u+w "$OURS.new/$f"
		fi
	done
	local p
	for p in "$TOP"/patches/*.patch; do
		[ -f "$p" ] || continue
		patch -d "$OURS.new" -p1 -s --no-backup-if-mismatch -N -r - <"$p" >"$OUT/src/patch.log" 2>&1 ||
			{ cat "$OUT/src/patch.log" >&2; rm -rf "$OURS.new";
			  die "patch $(basename "$p") no longer applies to $(base_version)"; }
	done
	# Files patched before but not now carry pristine mtimes; touch them so
	# an incremental build notices they changed back.
	for f in $old_patched; do
		case " $new_patched " in *" $f "*) continue ;; esac
		[ -e "$OURS.new/$f" ] || continue
		cp --remove-destination "$PRISTINE/$f" "$OURS.new/$f.tmp"
		mv -f "$OURS.new/$f.tmp" "$OURS.new/$f"
		touch "$OURS.new/$f"
	done
	echo "$new_patched" >"$OURS.new/.ksm-patched"
	echo "$stamp" >"$OURS.new/.ksm-stamp"
	rm -rf "$OURS"
	mv "$OURS.new" "$OURS"
}

mkdir -p "$OUT/src"
case "${1:-ours}" in
pristine) extract_pristine ;;
ours) extract_pristine; prepare_ours ;;
*) die "tree.sh: unknown tree '$1'" ;;
esac
