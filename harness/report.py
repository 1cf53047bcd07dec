#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Turn a guest console log into a test report.

One line per test, every kernel splat printed, and a closing line
"N passed, M failed, K skipped". Exit 1 on any failure or splat.

With --expect FILE (the kernel under development), only the tests listed in
FILE must pass: a listed test that fails fails the run, an unlisted failure is
reported as a known failure (counted as skipped), and an unlisted pass is
reported as newly passing so the list can grow.
"""
import argparse
import re
import sys

TS = r'\[\s*\d+\.\d+\]'
SPLAT = re.compile(TS + r'.*?('
                   r'BUG:|WARNING:|Oops|KASAN:|UBSAN:|'
                   r'kernel BUG at|general protection fault|'
                   r'possible circular locking dependency|'
                   r'possible recursive locking|inconsistent lock state|'
                   r'suspicious RCU usage|lockdep|'
                   r'list_del corruption|list_add corruption|'
                   r'Bad page|bad pte|soft lockup|hung_task|'
                   r'blocked for more than|Kernel panic|'
                   r'Unable to handle kernel|page_table_check)')
# Lines that match the words above but are not reports.
NOT_SPLAT = re.compile(r'lockdep: (?!.*turning off)|Lock dependency validator|'
                       r'Hierarchical RCU|RCU lockdep checking|'
                       r'MAX_LOCKDEP|per task-struct memory footprint|'
                       r'in-hardirq|in-softirq|hardirq-safe|'
                       r'\.\.\. ')


def parse(path):
    tests, order, splats, notes = {}, [], [], []
    current = None
    boot = done = None
    with open(path, errors='replace') as f:
        lines = f.read().splitlines()
    for i, raw in enumerate(lines):
        line = raw.replace('\r', '')
        m = re.search(r'@@KSMT (\w+)\s*(.*)', line)
        if m:
            kind, rest = m.group(1), m.group(2)
            if kind == 'boot':
                boot = rest
            elif kind == 'done':
                done = True
            elif kind == 'begin':
                current = rest.split()[0]
                if current not in tests:
                    order.append(current)
                tests[current] = {'status': 'unfinished', 'secs': None,
                                  'output': []}
            elif kind == 'end':
                parts = rest.split()
                name, status = parts[0], parts[1]
                t = tests.setdefault(name, {'output': []})
                if name not in order:
                    order.append(name)
                t['status'] = status
                sm = re.search(r'secs=(\d+)', rest)
                t['secs'] = int(sm.group(1)) if sm else None
                t['detail'] = ' '.join(parts[2:])
                current = None
            elif kind == 'note':
                notes.append(rest)
            continue
        if current:
            tests[current]['output'].append(line)
        if SPLAT.search(line) and not NOT_SPLAT.search(line):
            splats.append((i, current))
    return lines, boot, done, tests, order, splats, notes


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('log')
    ap.add_argument('--expect', help='expected-pass list (ours only)')
    ap.add_argument('--label', default='')
    ap.add_argument('--base', default='6.12')
    ap.add_argument('--host', action='append', default=[],
                    help='NAME=pass|fail: a check run on the host')
    args = ap.parse_args()

    lines, boot, done, tests, order, splats, notes = parse(args.log)
    expect = None
    if args.expect:
        expect = set()
        with open(args.expect) as f:
            for ln in f:
                ln = ln.split('#', 1)[0].strip()
                if ln:
                    expect.add(ln)

    print(f'== {args.label} (base {args.base}) {boot or "(no boot line)"}')
    for n in notes:
        print(f'note: {n}')
    passed = failed = skipped = 0
    newly, known = [], []
    for h in args.host:
        name, _, st = h.partition('=')
        if st == 'pass':
            passed += 1
            print(f'ok    {name} (host)')
        else:
            failed += 1
            print(f'FAIL  {name} (host)')
    for name in order:
        t = tests[name]
        st = t['status']
        secs = f" ({t['secs']}s)" if t.get('secs') is not None else ''
        listed = expect is None or name in expect
        if st in ('pass', 'flaky'):
            passed += 1
            tag = 'ok   ' if st == 'pass' else 'FLAKY'
            extra = ' (failed once, passed on retry)' if st == 'flaky' else ''
            if not listed:
                newly.append(name)
                extra += ' (newly passing: not in the expected list yet)'
            # A known failure the test tolerates (upstream bugs) stays visible.
            for o in t['output']:
                m = re.search(r'# XFAIL (.*)', o)
                if m:
                    extra += f' (XFAIL: {m.group(1).strip()})'
            print(f'{tag} {name}{secs}{extra}')
        elif st == 'skip':
            skipped += 1
            print(f'skip  {name}{secs} {t.get("detail", "")}'.rstrip())
        else:
            why = 'did not finish' if st == 'unfinished' else st
            tail = [o for o in t['output'] if re.search(
                r'not ok|error|fail|FAIL|Bail', o)][-8:]
            if listed:
                failed += 1
                print(f'FAIL  {name}{secs} ({why})')
                for o in tail:
                    print(f'      | {o}')
            else:
                skipped += 1
                known.append(name)
                print(f'xfail {name}{secs} ({why}; not in the expected list yet)')
    if expect is not None:
        for name in sorted(expect - set(order)):
            failed += 1
            print(f'FAIL  {name} (expected to pass, did not run)')
    if not done:
        failed += 1
        print('FAIL  guest run did not complete (no @@KSMT done: crash, '
              'panic or timeout); console tail:')
        for o in lines[-30:]:
            print(f'      | {o}')
    if splats:
        failed += 1
        print(f'FAIL  kernel splat: {len(splats)} report line(s); first:')
        first = splats[0][0]
        for o in lines[max(0, first - 2):first + 45]:
            print(f'      | {o}')
        during = sorted({t for _, t in splats if t})
        if during:
            print(f'      splats during: {", ".join(during)}')
    if newly:
        print(f'newly passing (add to the expected list): {" ".join(newly)}')
    if known:
        print(f'known failures (not yet expected to pass, counted as skipped): '
              f'{" ".join(known)}')
    print(f'{passed} passed, {failed} failed, {skipped} skipped')
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
