#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Charts for `make bench`, next to report.md, which gets links to them.

Usage: bench_plot.py BENCH_DIR   (reads report.json and runs/*/console.log)

- metrics.png: one panel per metric, ours and upstream side by side, the
  bar at the median over the boots, the whisker from the minimum to the
  maximum of every repetition (the numbers of report.md's cells);
- merge_saving.png: saved MiB over time in the merge_throughput workload,
  one curve per boot (ours solid, upstream dashed)."""
import glob
import json
import os
import re
import subprocess
import sys

SERIES = re.compile(r'^BENCHINFO series merge t=([\d.]+) saved_mib=([\d.]+)')
OURS, UPSTREAM = '#1f77b4', '#d62728'


def gnuplot(script):
    r = subprocess.run(['gnuplot'], input=script, text=True,
                       capture_output=True)
    if r.returncode:
        err = (r.stderr.strip().splitlines() or ['?'])[-1]
        raise RuntimeError('gnuplot: ' + err)


def metrics_chart(rep, bdir, png):
    rows = [m for m in rep['metrics']
            if m['ours'] is not None or m['upstream'] is not None]
    if not rows:
        return False
    cols = 4
    nrows = (len(rows) + cols - 1) // cols
    dat = os.path.join(bdir, '.metrics.dat')
    lines = [
        "set terminal pngcairo noenhanced size %d,%d font 'sans,9'" % (
            cols * 300, nrows * 230),
        "set output '%s'" % png,
        "set multiplot layout %d,%d title 'make bench: ours vs upstream "
        "(bar: median over boots; whisker: min - max)' font 'sans,12'" % (
            nrows, cols),
        "set style fill solid 0.6 border -1",
        "set boxwidth 0.6",
        "set xrange [-0.7:1.7]",
        "set yrange [0:*]",
        "set xtics ('ours' 0, 'upstream' 1)",
        "set grid ytics",
        "unset key",
    ]
    with open(dat, 'w') as f:
        for i, m in enumerate(rows):
            for x, side in ((0, 'ours'), (1, 'upstream')):
                v = m[side]
                if v is None:
                    f.write('%d nan nan nan\n' % x)
                else:
                    lo = m[side + '_min'] if m[side + '_min'] is not None else v
                    hi = m[side + '_max'] if m[side + '_max'] is not None else v
                    f.write('%d %g %g %g\n' % (x, v, lo, hi))
            f.write('\n\n')
    for i, m in enumerate(rows):
        ratio = ('  %.2fx' % m['ratio']) if m['ratio'] is not None else ''
        # the name and ratio on top, unit and direction beside the axis
        title = m['name'] + ratio
        lines += [
            "set title '%s' font 'sans,9'" % title.replace("'", ''),
            "set ylabel '%s, %s is better' font 'sans,8'" % (
                m['unit'].replace("'", ''), m['better']),
            "plot '%s' index %d using 1:2:($1 == 0 ? 0x%s : 0x%s) "
            "with boxes lc rgb variable, '' index %d using 1:2:3:4 "
            "with yerrorbars lc rgb 'black' pt 0" % (
                dat, i, OURS[1:], UPSTREAM[1:], i),
        ]
    lines.append('unset multiplot')
    try:
        gnuplot('\n'.join(lines) + '\n')
    finally:
        os.unlink(dat)
    return True


def series_of(path):
    pts = []
    try:
        with open(path, errors='replace') as f:
            for ln in f:
                m = SERIES.match(ln.strip())
                if m:
                    pts.append((float(m.group(1)), float(m.group(2))))
    except OSError:
        pass
    return pts


def saving_chart(bdir, png):
    plots, dats = [], []
    for rd in sorted(glob.glob(os.path.join(bdir, 'runs', '*'))):
        base = os.path.basename(rd)
        m = re.match(r'(\d+)-(ours|upstream)-(\S+)$', base)
        if not m:
            continue
        pts = series_of(os.path.join(rd, 'console.log'))
        if not pts:
            continue
        dat = os.path.join(bdir, '.%s.dat' % base)
        with open(dat, 'w') as f:
            # the workload's first run of the boot only
            prev = -1.0
            for t, mib in pts:
                if t < prev:
                    break
                prev = t
                f.write('%g %g\n' % (t, mib))
        dats.append(dat)
        side = m.group(2)
        plots.append("'%s' using 1:2 with lines lw 2 dt %d lc rgb '%s' "
                     "title '%s, boot %d (%s)'" % (
                         dat, 1 if side == 'ours' else 2,
                         OURS if side == 'ours' else UPSTREAM, side,
                         int(m.group(1)), m.group(3)))
    if not plots:
        return False
    try:
        gnuplot('\n'.join([
            "set terminal pngcairo noenhanced size 960,540 font 'sans,11'",
            "set output '%s'" % png,
            "set title 'merge_throughput: saved MiB while ksmd merges "
            "(pages_to_scan max, sleep 0)'",
            "set xlabel 'seconds since run=1'",
            "set ylabel 'saved MiB (pages_sharing)'",
            "set key right bottom",
            "set grid",
            "set yrange [0:*]",
            'plot ' + ', '.join(plots),
        ]) + '\n')
    finally:
        for d in dats:
            os.unlink(d)
    return True


def main():
    if len(sys.argv) != 2:
        sys.exit('usage: bench_plot.py BENCH_DIR')
    bdir = sys.argv[1]
    with open(os.path.join(bdir, 'report.json')) as f:
        rep = json.load(f)
    made = []
    try:
        if metrics_chart(rep, bdir, os.path.join(bdir, 'metrics.png')):
            made.append(('metrics.png', 'every metric, ours vs upstream'))
        if saving_chart(bdir, os.path.join(bdir, 'merge_saving.png')):
            made.append(('merge_saving.png',
                         'saved MiB over time, merge_throughput workload'))
    except RuntimeError as e:
        print('error: %s: charts incomplete' % e, file=sys.stderr)
    if made:
        with open(os.path.join(bdir, 'report.md'), 'a') as f:
            f.write('\n## Charts\n\n')
            for name, what in made:
                f.write('- [%s](%s): %s\n\n  ![%s](%s)\n\n' % (
                    name, name, what, what, name))
        for name, _ in made:
            print('chart: %s' % os.path.join(bdir, name))
    return 0 if len(made) == 2 else 1


if __name__ == '__main__':
    sys.exit(main())
