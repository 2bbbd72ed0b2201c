#!/usr/bin/env python3
"""bench/results.svg from the numbers bench.py measured: two pygal bar charts, one above the
other, with a group of bars per case and a bar per proxy. The top one is requests/s as a
share of nginx's (the cases differ by orders of magnitude, the ratios do not; nginx's own
rate is in each case's label), the bottom one p99 latency in milliseconds. It runs in the
venv bench.py makes (bench/chart-requirements.txt pins pygal).

  chart.py RESULTS.json OUT.svg
"""
import json, re, sys

import pygal
from pygal.style import Style

WIDTH = 1100
NAMES = {"nginx": "nginx", "haproxy": "HAProxy", "pingora-example": "Pingora example",
         "hyper": "hyper proxy", "pinlb": "pinlb"}
COLORS = {"nginx": "#009639", "haproxy": "#1f77b4", "pingora-example": "#f0a30a",
          "hyper": "#9467bd", "pinlb": "#d62728"}


def bar_chart(report, title, height, value_format):
    names = report["order"]
    style = Style(background="white", plot_background="white", font_family="sans-serif",
                  colors=tuple(COLORS[n] for n in names), value_font_size=9, title_font_size=15,
                  legend_font_size=12, label_font_size=11)
    # No scripts (js=[]): a README shows the SVG as an image, where they would not run anyway.
    return pygal.Bar(width=WIDTH, height=height, title=title, style=style, legend_at_bottom=True,
                     legend_at_bottom_columns=len(names), print_values=True, print_values_position="top",
                     print_zeroes=False, formatter=value_format.format, js=[], truncate_label=-1,
                     truncate_legend=-1)


def series_name(report, name):
    why = report["absent"].get(name)
    return f"{NAMES[name]}: {why.split(' (')[0]}" if why else NAMES[name]


def add_series(chart, report, value):
    """One series per proxy; a case the proxy did not run has no bar."""
    for name in report["order"]:
        chart.add(series_name(report, name),
                  [value(rows[name], rows) if name in rows else None for rows in report["results"].values()])


def nginx_rates(report):
    """nginx's own rate per case, for the reader who wants absolute numbers."""
    rates = [f"{report['labels'][case]} {rows['nginx']['rate']:,.0f}{' msg' if case == 'websocket' else ''}"
             for case, rows in report["results"].items() if "nginx" in rows]
    return "nginx's requests/s: " + ", ".join(rates) if rates else "nginx absent: ratios to pinlb"


def rate_chart(report):
    title = (f"pinlb beside nginx, HAProxy and two Rust anchors: requests/s relative to nginx "
             f"(nginx = 1.00; higher is better)\n{report['date']}, {report['machine']}, "
             f"{report['setup']}\n{nginx_rates(report)}")
    chart = bar_chart(report, title, 580, "{:.2f}")
    chart.x_labels = [report["labels"][c] for c in report["results"]]

    def ratio(row, rows):
        return row["rate"] / rows.get("nginx", rows["pinlb"])["rate"]
    add_series(chart, report, ratio)
    return chart


def p99_chart(report):
    title = ("p99 latency, ms (lower is better)\nThe anchors proxy plain HTTP/1.1 only: "
             "no websocket route, no TLS")
    chart = bar_chart(report, title, 480, "{:.1f}")
    chart.x_labels = [report["labels"][c] for c in report["results"]]
    add_series(chart, report, lambda row, rows: row["p99"])
    return chart


def stack(charts):
    """One SVG document holding each chart's own <svg> below the one before (pygal has no
    subplots; each chart scopes its CSS by its own id, so they do not clash)."""
    height = sum(c.config.height for c in charts)
    parts, y = [], 0
    for c in charts:
        inner = re.sub(r"^<\?xml[^>]*>\s*", "", c.render(is_unicode=True))
        parts.append(inner.replace("<svg ", f'<svg y="{y}" width="{WIDTH}" height="{c.config.height}" ', 1))
        y += c.config.height
    return (f'<?xml version="1.0" encoding="utf-8"?>\n<svg xmlns="http://www.w3.org/2000/svg" '
            f'width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}">\n' + "\n".join(parts) + "\n</svg>\n")


def main():
    report = json.load(open(sys.argv[1]))
    with open(sys.argv[2], "w") as f:
        f.write(stack([rate_chart(report), p99_chart(report)]))


if __name__ == "__main__":
    main()
