#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Make the .config of one flavor: tinyconfig + configs/base.config +
# configs/FLAVOR.config, generated from the pristine tree so that `ours` and
# `upstream` of a flavor get the identical config. Fails if any fragment line
# did not take effect (a dependency we missed).
# Usage: kconfig.sh FLAVOR  -> prints the path of the config
. "$(dirname "$0")/lib.sh"
flavor=$1
check_flavor "$flavor"
cfgdir=$OUT/config/$flavor
frags="$TOP/configs/base.config $TOP/configs/$flavor.config"
stamp=$(cat $frags "$0" | sha1sum | cut -d' ' -f1)
if [ -f "$cfgdir/.config" ] && [ "$(cat "$cfgdir/stamp" 2>/dev/null)" = "$stamp" ]; then
	echo "$cfgdir/.config"
	exit 0
fi
rm -rf "$cfgdir"
mkdir -p "$cfgdir"
make -s -C "$PRISTINE" O="$cfgdir" tinyconfig >"$cfgdir/log" 2>&1 ||
	{ tail "$cfgdir/log" >&2; die "tinyconfig failed"; }
# shellcheck disable=SC2086
(cd "$cfgdir" && "$PRISTINE/scripts/kconfig/merge_config.sh" -m -O "$cfgdir" \
	"$cfgdir/.config" $frags) >>"$cfgdir/log" 2>&1 ||
	{ tail "$cfgdir/log" >&2; die "merge_config failed"; }
make -s -C "$PRISTINE" O="$cfgdir" olddefconfig >>"$cfgdir/log" 2>&1 ||
	{ tail "$cfgdir/log" >&2; die "olddefconfig failed"; }
bad=0
for f in $frags; do
	while IFS= read -r line; do
		case "$line" in
		CONFIG_*=*)
			grep -qxF "$line" "$cfgdir/.config" ||
				{ echo "config: $line did not take effect ($(basename "$f"))" >&2; bad=1; }
			;;
		"# CONFIG_"*" is not set")
			opt=${line#\# }; opt=${opt%% *}
			if grep -q "^$opt=" "$cfgdir/.config"; then
				echo "config: $opt should be off ($(basename "$f"))" >&2; bad=1
			fi
			;;
		esac
	done <"$f"
done
[ $bad = 0 ] || die "kernel config for $flavor is not what configs/ asks for"
echo "$stamp" >"$cfgdir/stamp"
echo "$cfgdir/.config"
