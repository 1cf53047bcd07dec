#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# `make fresh-check`: rehearse a fresh Debian machine. Builds a minimal root
# (debootstrap --variant=minbase, from the Debian mirror this machine's apt
# sources use) under out/fresh/root, gives it this machine's resolv.conf and
# apt sources, installs the documented prerequisites (make, git), clones the
# committed HEAD into it and runs the README's two commands there (chroot with
# /proc, /sys, /dev and /dev/pts bound), each with its result and wall time,
# then `N passed, M failed`.
# Env: FRESH_REUSE=1 (reuse the last root: no debootstrap, packages already
#      installed; the clone is always new), FRESH_MIRROR=URL, FRESH_SUITE=name,
#      FRESH_CMDS="make test;make run" (the commands, `;`-separated).
. "$(dirname "$0")/lib.sh"
[ "$(id -u)" = 0 ] || die "fresh-check needs root (debootstrap, chroot, mount)"

FRESH=$OUT/fresh
mkdir -p "$FRESH"
FRESH=$(cd "$FRESH" && pwd -P)
ROOT=$FRESH/root
exec 8>"$FRESH/lock"
flock -n 8 || die "another fresh-check is running on $FRESH"
PREREQ="make git"
IFS=';' read -r -a cmds <<<"${FRESH_CMDS:-make test;make run}"

# Mount points under the root, deepest first.
mounted_under() {
	awk -v r="$1" '$2 == r || index($2, r "/") == 1 {print $2}' /proc/mounts | sort -r
}

unmount_all() {
	local m
	for m in $(mounted_under "$ROOT"); do
		umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null ||
			echo "error: could not unmount $m" >&2
	done
}

# Processes whose root is the fresh root: the commands we ran there.
in_root_pids() {
	local p
	for p in /proc/[0-9]*; do
		[ "$(readlink "$p/root" 2>/dev/null)" = "$ROOT" ] && echo "${p#/proc/}"
	done
	true
}

cleanup() {
	local rc=$? pids
	trap - EXIT INT TERM
	pids=$(in_root_pids)
	if [ -n "$pids" ]; then
		note "fresh-check: stopping what still runs in the fresh root"
		# shellcheck disable=SC2086
		kill $pids 2>/dev/null || true
		sleep 3
		pids=$(in_root_pids)
		# shellcheck disable=SC2086
		[ -z "$pids" ] || kill -9 $pids 2>/dev/null || true
		sleep 1
	fi
	unmount_all
	exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

suite=${FRESH_SUITE:-$(. /etc/os-release && echo "${VERSION_CODENAME:-}")}
[ -n "$suite" ] || die "cannot tell this machine's Debian release; set FRESH_SUITE"

# The first URI that serves $suite in this machine's apt sources (one-line
# and deb822 formats).
host_mirror() {
	local f
	for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
		[ -f "$f" ] || continue
		awk -v s="$suite" '$1 == "deb" {
			l = $0; sub(/\[[^]]*\]/, "", l); split(l, a, " ")
			if (a[3] == s) { print a[2]; exit }
		}' "$f"
	done
	for f in /etc/apt/sources.list.d/*.sources; do
		[ -f "$f" ] || continue
		awk -v s="$suite" '
		function flush() {
			if (!done && types ~ /(^| )deb( |$)/ && (" " suites " ") ~ (" " s " ") &&
			    enabled != "no" && uris != "") { split(uris, u, " "); print u[1]; done = 1; exit }
			types = suites = uris = ""; enabled = "yes"
		}
		BEGIN { enabled = "yes" }
		/^[ \t]*$/ { flush(); next }
		/^#/ { next }
		tolower($1) == "types:" { $1 = ""; types = substr($0, 2) }
		tolower($1) == "suites:" { $1 = ""; suites = substr($0, 2) }
		tolower($1) == "uris:" { $1 = ""; uris = substr($0, 2) }
		tolower($1) == "enabled:" { enabled = tolower($2) }
		END { flush() }' "$f"
	done
}
mirror=${FRESH_MIRROR:-$(host_mirror | head -n 1)}
[ -n "$mirror" ] || die "no apt source serves '$suite' on this machine; set FRESH_MIRROR=URL"

unmount_all
if [ "${FRESH_REUSE:-0}" = 1 ] && [ -f "$ROOT/.fresh-ok" ]; then
	note "fresh-check: reusing $ROOT (FRESH_REUSE=1)"
else
	[ -z "$(mounted_under "$ROOT")" ] || die "something is still mounted under $ROOT"
	if [ -e "$ROOT" ] || [ -e "$ROOT.new" ]; then
		note "fresh-check: removing the last fresh root (FRESH_REUSE=1 would reuse it)"
		rm -rf --one-file-system "$ROOT" "$ROOT.new"
	fi
	note "fresh-check: debootstrap --variant=minbase $suite from $mirror (log in $FRESH/debootstrap.log)"
	t0=$(date +%s)
	debootstrap --variant=minbase "$suite" "$ROOT.new" "$mirror" >"$FRESH/debootstrap.log" 2>&1 ||
		{ tail -n 20 "$FRESH/debootstrap.log" >&2; die "debootstrap of $suite from $mirror failed"; }
	mv "$ROOT.new" "$ROOT"
	note "fresh-check: minimal root ready in $(( $(date +%s) - t0 ))s"

	# This machine's name service and apt configuration: its sources (with
	# the keyrings they name), and its Acquire settings (proxy, ...).
	cp -L /etc/resolv.conf "$ROOT/etc/resolv.conf"
	rm -f "$ROOT/etc/apt/sources.list"
	for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
		[ -f "$f" ] || continue
		mkdir -p "$ROOT$(dirname "$f")"
		cp "$f" "$ROOT$f"
		grep -oiE 'signed-by[:=] *[^] ]+' "$f" | sed -E 's/^[^:=]*[:=] *//' |
			while read -r k; do
				if [ -f "$k" ] && [ ! -e "$ROOT$k" ]; then
					mkdir -p "$ROOT$(dirname "$k")"
					cp "$k" "$ROOT$k"
				fi
			done
	done
	for f in /etc/apt/apt.conf /etc/apt/apt.conf.d/*; do
		[ -f "$f" ] && grep -qiE 'proxy|Acquire::' "$f" && cp "$f" "$ROOT$f"
	done
	true
fi

mount -t proc proc "$ROOT/proc"
mount --bind /sys "$ROOT/sys"
mount --bind /dev "$ROOT/dev"
mount --bind /dev/pts "$ROOT/dev/pts"

in_root() {
	chroot "$ROOT" /usr/bin/env -i HOME=/root TERM="${TERM:-dumb}" \
		PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
		/bin/bash -c "$1"
}

if [ ! -f "$ROOT/.fresh-ok" ]; then
	# What a fresh machine has before the README's commands: make and git
	# (to clone and to type `make`). Nothing else is installed by hand.
	note "fresh-check: installing the prerequisites: $PREREQ (log in $FRESH/prereq.log)"
	in_root "export DEBIAN_FRONTEND=noninteractive; apt-get update &&
		apt-get install -y -q --no-install-recommends $PREREQ" >"$FRESH/prereq.log" 2>&1 ||
		{ tail -n 20 "$FRESH/prereq.log" >&2; die "installing $PREREQ in the fresh root failed"; }
	touch "$ROOT/.fresh-ok"
fi

# A clone of the committed HEAD, as a user would make it.
rev=$(git -C "$TOP" rev-parse HEAD)
[ -z "$(git -C "$TOP" status --porcelain --untracked-files=no)" ] ||
	note "fresh-check: uncommitted changes are not part of the check (it clones HEAD)"
rm -rf --one-file-system "$ROOT/srv/ksm.git" "$ROOT/root/ksm"
mkdir -p "$ROOT/srv"
git init -q --bare "$ROOT/srv/ksm.git"
git -C "$TOP" push -q "$ROOT/srv/ksm.git" "$rev:refs/heads/main"
git --git-dir="$ROOT/srv/ksm.git" symbolic-ref HEAD refs/heads/main
in_root "git clone -q /srv/ksm.git /root/ksm" ||
	die "git clone in the fresh root failed"
note "fresh-check: cloned $(git -C "$TOP" log -1 --format='%h %s' "$rev") into /root/ksm"

hms() {
	printf '%dm%02ds' $(( $1 / 60 )) $(( $1 % 60 ))
}

pass=0 fail=0 results=()
for c in "${cmds[@]}"; do
	c=$(echo "$c" | sed 's/^ *//; s/ *$//')
	[ -n "$c" ] || continue
	log=$FRESH/$(echo "$c" | tr -c 'A-Za-z0-9\n' '-').log
	note "fresh-check: $c (in /root/ksm of the fresh root; log in $log)"
	t0=$(date +%s)
	# In the background, so that a signal to this script is acted on at once.
	set +e
	in_root "cd /root/ksm && $c" > >(tee "$log") 2>&1 </dev/null &
	wait $!
	rc=$?
	set -e
	secs=$(( $(date +%s) - t0 ))
	if [ "$rc" = 0 ]; then
		r="fresh-check: $c: pass in $(hms $secs) (${secs}s)"
		pass=$((pass + 1))
	else
		r="fresh-check: $c: FAIL (exit $rc) after $(hms $secs) (${secs}s), log in $log"
		fail=$((fail + 1))
	fi
	echo "$r"
	results+=("$r")
done
echo
printf '%s\n' "${results[@]}"
echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
