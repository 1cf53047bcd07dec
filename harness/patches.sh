#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Export our tree as a numbered `git format-patch` series against the pristine
# base into out/patches/, then (with --check) prove that the series applies
# with `git am` to a clean base tree and reproduces our tree exactly.
. "$(dirname "$0")/lib.sh"
"$TOP/harness/tree.sh" ours
ver=$(base_version)
G=(git -c user.name="KSM harness" -c user.email="ksm@localhost"
   -c commit.gpgsign=false -c core.autocrlf=false)
work=$OUT/patches-work
rm -rf "$work" "$OUT/patches"
mkdir -p "$work/repo" "$OUT/patches"

touched() {
	owned_files
	for p in "$TOP"/patches/*.patch; do
		[ -f "$p" ] || continue
		grep -E '^\+\+\+ b/' "$p" | sed 's|^+++ b/||'
	done
}

# A git repo holding the pristine version of every file the series touches.
base_repo() {
	local dir=$1 f
	mkdir -p "$dir"
	(cd "$dir" && "${G[@]}" init -q -b base .)
	for f in $(touched | sort -u); do
		if [ -f "$PRISTINE/$f" ]; then
			mkdir -p "$dir/$(dirname "$f")"
			cp "$PRISTINE/$f" "$dir/$f"
		fi
	done
	(cd "$dir" && "${G[@]}" add -A && "${G[@]}" commit -q --allow-empty -m "Linux $ver")
}

base_repo "$work/repo"
cd "$work/repo"
for p in "$TOP"/patches/*.patch; do
	[ -f "$p" ] || continue
	"${G[@]}" am -q "$p" 2>"$work/am.log" ||
		{ cat "$work/am.log" >&2; die "patches/$(basename "$p") does not apply to $ver with git am"; }
done
commit_group() {
	local msg=$1 f any=0
	shift
	for f in "$@"; do
		[ -f "$TOP/$f" ] || continue
		mkdir -p "$(dirname "$f")"
		cp "$TOP/$f" "$f"
		"${G[@]}" add "$f"
		any=1
	done
	[ $any = 1 ] || return 0
	"${G[@]}" diff --cached --quiet && return 0
	"${G[@]}" commit -q -F - <<MSG
$msg
MSG
}
own=$(owned_files)
core=$(echo "$own" | grep -E '^(mm/|include/)' || true)
docs=$(echo "$own" | grep -E '^Documentation/' || true)
tools=$(echo "$own" | grep -E '^tools/mm/' || true)
tests=$(echo "$own" | grep -E '^tools/testing/' || true)
# shellcheck disable=SC2086
commit_group "mm/ksm: replace the KSM implementation

A new Kernel Samepage Merging core with the 6.12 user and in-kernel ABI:
stable and unstable trees ordered by a 64-bit content hash, range-at-a-time
page table walks and a smaller per-page tracking item." $core
# shellcheck disable=SC2086
commit_group "Documentation/mm: describe the new KSM implementation" $docs
# shellcheck disable=SC2086
commit_group "tools/mm: add ksmctl, a KSM status, monitoring and tuning tool

One libc-only C file: status, top, watch, tune with profiles, and run
(commands started with PR_SET_MEMORY_MERGE), with --json output." $tools
# shellcheck disable=SC2086
commit_group "selftests/mm: add KSM selftests and torture test" $tests
first=$("${G[@]}" rev-list --max-parents=0 HEAD)
"${G[@]}" format-patch -q -o "$OUT/patches" "$first..HEAD"
echo "exported $(ls "$OUT/patches" | wc -l) patches against $ver into $OUT/patches" >&2

if [ "${1:-}" = --check ]; then
	base_repo "$work/check"
	cd "$work/check"
	"${G[@]}" am -q "$OUT"/patches/*.patch 2>"$work/am.log" ||
		{ cat "$work/am.log" >&2; die "exported series does not apply with git am to clean $ver"; }
	bad=0
	for f in $(touched | sort -u); do
		[ -f "$OURS/$f" ] || continue
		cmp -s "$OURS/$f" "$work/check/$f" ||
			{ echo "patch check: $f differs from our tree after git am" >&2; bad=1; }
	done
	[ $bad = 0 ] || die "exported series does not reproduce our tree"
	echo "patch check: $(ls "$OUT/patches" | wc -l) patches apply with git am to clean $ver and reproduce our tree" >&2
fi
