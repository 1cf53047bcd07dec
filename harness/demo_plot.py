#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Draw the demo's saving over time: one curve per act and kernel.

Usage: demo_plot.py OUTDIR KERNEL=CONSOLE_LOG [KERNEL=CONSOLE_LOG ...]

Reads the "@@KSMT data act=NAME t=SECONDS saved_mib=MIB cpu_s=SECONDS"
lines ksm_demo prints once a second, writes OUTDIR/samples-KERNEL.csv and
OUTDIR/saving.png (gnuplot), and prints where they are."""
import os
import re
import shutil
import subprocess
import sys

DATA = re.compile(r'@@KSMT data act=(\S+) t=([\d.]+) saved_mib=([\d.]+) '
                  r'cpu_s=([\d.]+)')
COLORS = ['#1f77b4', '#d62728', '#2ca02c', '#9467bd', '#ff7f0e']


def parse(path):
    series = {}
    with open(path, errors='replace') as f:
        for line in f:
            m = DATA.search(line)
            if m:
                series.setdefault(m.group(1), []).append(
                    (float(m.group(2)), float(m.group(3)),
                     float(m.group(4))))
    return series


def main():
    if len(sys.argv) < 3:
        sys.exit('usage: demo_plot.py OUTDIR KERNEL=CONSOLE_LOG...')
    outdir = sys.argv[1]
    os.makedirs(outdir, exist_ok=True)
    runs = []
    for arg in sys.argv[2:]:
        kernel, path = arg.split('=', 1)
        series = parse(path)
        if not series:
            print(f'error: no demo samples in {path}', file=sys.stderr)
            continue
        csv = os.path.join(outdir, f'samples-{kernel}.csv')
        with open(csv, 'w') as f:
            f.write('kernel,act,seconds,saved_mib,ksmd_cpu_s\n')
            for act, pts in series.items():
                for t, mib, cpu in pts:
                    f.write(f'{kernel},{act},{t},{mib},{cpu}\n')
        runs.append((kernel, series))
        print(f'samples: {csv}')
    if not runs:
        return 1
    if not shutil.which('gnuplot'):
        print('error: gnuplot is missing: no picture', file=sys.stderr)
        return 1
    acts = []
    for _, series in runs:
        acts += [a for a in series if a not in acts]
    png = os.path.join(outdir, 'saving.png')
    datfiles, plots = [], []
    for kernel, series in runs:
        for act, pts in series.items():
            dat = os.path.join(outdir, f'.{kernel}-{act}.dat')
            with open(dat, 'w') as f:
                for t, mib, _ in pts:
                    f.write(f'{t} {mib}\n')
            datfiles.append(dat)
            color = COLORS[acts.index(act) % len(COLORS)]
            dash = 1 if kernel == 'ours' else 2
            plots.append(f"'{dat}' using 1:2 with lines lw 2 dt {dash} "
                         f"lc rgb '{color}' title '{kernel}: {act}'")
    script = '\n'.join([
        "set terminal pngcairo noenhanced size 960,540 font 'sans,11'",
        f"set output '{png}'",
        "set title 'KSM demo: memory saved while ksmd merges'",
        "set xlabel 'seconds since ksmd started (each act)'",
        "set ylabel 'saved MiB'",
        "set key right bottom",
        "set grid",
        "set yrange [0:*]",
        'plot ' + ', '.join(plots),
    ]) + '\n'
    r = subprocess.run(['gnuplot'], input=script, text=True,
                       capture_output=True)
    for dat in datfiles:
        os.unlink(dat)
    if r.returncode:
        print('error: gnuplot failed: ' + r.stderr.strip().splitlines()[-1],
              file=sys.stderr)
        return 1
    print(f'picture: {png}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
