#!/usr/bin/env python3
"""Draws resolve latency against N (log-log) from `emrfs-rolemap bench --format json` reports.

Usage: latency_chart.py REPORT.json... > chart.svg   (one report per configuration size; stdlib only)
"""
import json
import math
import sys

SERIES = [
    ("reference_ns_median", "reference scan", "#d62728"),
    ("compiled_ns_median", "compiled, prepared principal", "#1f77b4"),
    ("baseline_ns_median", "limit: one HashMap lookup of the path", "#7f7f7f"),
]
W, H, LEFT, RIGHT, TOP, BOTTOM = 720, 440, 80, 30, 40, 60


def main(paths):
    reports = sorted((json.load(open(p)) for p in paths), key=lambda r: r["mappings"])
    xs = [r["mappings"] for r in reports]
    values = [r[key] for r in reports for key, _, _ in SERIES]
    x0, x1 = math.floor(math.log10(min(xs))), math.ceil(math.log10(max(xs)))
    y0, y1 = math.floor(math.log10(min(values))), math.ceil(math.log10(max(values)))
    px = lambda x: LEFT + (math.log10(x) - x0) / max(x1 - x0, 1) * (W - LEFT - RIGHT)
    py = lambda y: H - BOTTOM - (math.log10(y) - y0) / max(y1 - y0, 1) * (H - TOP - BOTTOM)
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" '
        'font-family="sans-serif" font-size="12">',
        f'<rect width="{W}" height="{H}" fill="white"/>',
        f'<text x="{W / 2}" y="22" text-anchor="middle" font-size="15">'
        "Resolve latency (median ns per request) against the number of mappings</text>",
    ]
    for e in range(x0, x1 + 1):
        x = px(10**e)
        out.append(f'<line x1="{x:.1f}" y1="{TOP}" x2="{x:.1f}" y2="{H - BOTTOM}" stroke="#ddd"/>')
        out.append(f'<text x="{x:.1f}" y="{H - BOTTOM + 18}" text-anchor="middle">{10**e:,}</text>')
    for e in range(y0, y1 + 1):
        y = py(10**e)
        out.append(f'<line x1="{LEFT}" y1="{y:.1f}" x2="{W - RIGHT}" y2="{y:.1f}" stroke="#ddd"/>')
        label = f"{10**e:,} ns" if e < 3 else (f"{10**(e - 3):,} µs" if e < 6 else f"{10**(e - 6):,} ms")
        out.append(f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{label}</text>')
    out.append(f'<text x="{(LEFT + W - RIGHT) / 2}" y="{H - 15}" text-anchor="middle">'
               "mappings N (log scale; about 3 identifiers each)</text>")
    for i, (key, name, colour) in enumerate(SERIES):
        points = " ".join(f"{px(r['mappings']):.1f},{py(r[key]):.1f}" for r in reports)
        out.append(f'<polyline points="{points}" fill="none" stroke="{colour}" stroke-width="2"/>')
        for r in reports:
            out.append(f'<circle cx="{px(r["mappings"]):.1f}" cy="{py(r[key]):.1f}" r="3.5" fill="{colour}">'
                       f'<title>{name}, N = {r["mappings"]:,}: {r[key]:,.1f} ns</title></circle>')
        ly = TOP + 14 + 18 * i
        out.append(f'<line x1="{LEFT + 12}" y1="{ly - 4}" x2="{LEFT + 36}" y2="{ly - 4}" stroke="{colour}" stroke-width="2"/>')
        out.append(f'<text x="{LEFT + 42}" y="{ly}">{name}</text>')
    out.append("</svg>")
    print("\n".join(out))


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    main(sys.argv[1:])
