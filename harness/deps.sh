#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Install whatever the harness needs and is missing. Idempotent, silent when
# everything is already there.
. "$(dirname "$0")/lib.sh"

PKGS="linux-source-6.12 qemu-system-x86 busybox-static gcc make flex bison bc
libelf-dev libssl-dev cpio xz-utils libnuma-dev ccache sparse python3 git
perl kmod dwarves"

missing=""
for p in $PKGS; do
	st=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
	case "$st" in
	*"install ok installed"*) ;;
	*) missing="$missing $p" ;;
	esac
done
[ -z "$missing" ] && exit 0

if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
	die "missing packages:$missing (need root and apt-get to install them)"
fi
note "installing:$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null 2>&1 || die "apt-get update failed"
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing >/tmp/ksm-harness-apt.log 2>&1 ||
	{ tail -20 /tmp/ksm-harness-apt.log >&2; die "apt-get install failed:$missing"; }
rm -f /tmp/ksm-harness-apt.log
