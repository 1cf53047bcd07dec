#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Kernel style gates on the files we own: checkpatch --strict, and a W=1 +
# sparse (C=1) build of mm/ksm.o. Exit non-zero on any finding.
. "$(dirname "$0")/lib.sh"
"$TOP/harness/tree.sh" ours
rc=0
files=$(cd "$TOP" && ls mm/ksm.c include/linux/ksm.h include/trace/events/ksm.h \
	tools/testing/selftests/mm/ksm_*.c tools/testing/selftests/mm/ksm_*.h \
	tools/mm/ksmctl.c 2>/dev/null)
# shellcheck disable=SC2086
if ! (cd "$TOP" && perl "$PRISTINE/scripts/checkpatch.pl" --no-tree --strict \
	--terse --show-types -f $files) >"$OUT/checkpatch.txt" 2>&1; then
	grep -E 'ERROR|WARNING|CHECK' "$OUT/checkpatch.txt" | head -40
	echo "checkpatch --strict: findings above (full list: $OUT/checkpatch.txt)"
	rc=1
else
	echo "checkpatch --strict: clean ($(echo $files | wc -w) files)"
fi
bdir=$(builddir ours release)
if [ ! -f "$bdir/.config" ]; then
	"$TOP/harness/build.sh" ours release >/dev/null
fi
touch "$TOP/mm/ksm.c"
if ! make -C "$OURS" O="$bdir" W=1 C=1 -j"$JOBS" mm/ksm.o >"$OUT/w1.txt" 2>&1 ||
	grep -E 'warning:|error:' "$OUT/w1.txt" | grep -q 'ksm'; then
	grep -E 'warning:|error:' "$OUT/w1.txt" | head -30
	echo "W=1 / sparse: findings above (full log: $OUT/w1.txt)"
	rc=1
else
	echo "W=1 + sparse (C=1) on mm/ksm.o: clean"
fi
exit $rc
