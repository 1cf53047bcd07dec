#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Follow a guest console on stdin and print, as it happens, what a person
watching needs: the harness's progress lines and kernel splats always; with
--all, also every line a test prints (the demo's acts), but never the
kernel's own log or the lines kept for machines (@@KSMT data, mem, stack)."""
import re
import sys

PROGRESS = re.compile(r'^@@KSMT (begin|end|boot|note|retry) ')
SPLAT = re.compile(r'\] (BUG|WARNING|Oops|Kernel panic|KASAN|.*lockdep|'
                   r'.*circular locking|.*soft lockup|.*hung_task|Bad page)')
KERNEL = re.compile(r'^\[ *\d+\.\d+\]')
HIDDEN = re.compile(r'^@@KSMT (data|mem|stack|done)')


def main():
    show_all = '--all' in sys.argv[1:]
    inside = False
    for raw in sys.stdin:
        line = raw.rstrip('\r\n')
        if PROGRESS.match(line):
            inside = line.startswith('@@KSMT begin ')
            out = '  guest: ' + line[len('@@KSMT '):]
        elif SPLAT.search(line):
            out = line
        elif show_all and inside and not KERNEL.match(line) \
                and not HIDDEN.match(line):
            out = '  ' + line
        else:
            continue
        sys.stderr.write(out + '\n')
        sys.stderr.flush()


if __name__ == '__main__':
    try:
        main()
    except (KeyboardInterrupt, BrokenPipeError):
        pass
