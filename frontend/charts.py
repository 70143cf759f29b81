"""Small SVG charts drawn by templates (no JavaScript, no inline styles): the geometry is computed here and
`frontend/charts/bars.svg.html` / `frontend/charts/lines.svg.html` draw it. Empty or degenerate data gives
`None`, and the page says there is too little to draw instead of drawing noise."""

from __future__ import annotations

from crowd.selectors.charts import spend_over_time, worker_f1_histogram

BAR_H, GAP, LABEL_W, WIDTH = 18, 5, 130, 460


def bars(items, *, title: str, fmt=lambda v: f"{v:g}", max_value: float | None = None) -> dict | None:
    """Horizontal bars for [(label, value)]; values None are shown as "n/a" without a bar."""
    items = [(str(label), value) for label, value in items]
    values = [float(v) for _, v in items if v is not None]
    if not items or not values or max(values) <= 0:
        return None
    top = max_value if max_value is not None else max(values)
    span = WIDTH - LABEL_W - 60
    rows = []
    for i, (label, value) in enumerate(items):
        y = i * (BAR_H + GAP)
        w = 0 if value is None else max(0.0, float(value)) / top * span
        rows.append(
            {
                "label": label,
                "y": y,
                "ty": y + BAR_H - 5,
                "w": round(w, 1),
                "tx": LABEL_W + round(w, 1) + 4,
                "text": "n/a" if value is None else fmt(value),
            }
        )
    return {
        "title": title,
        "rows": rows,
        "height": len(rows) * (BAR_H + GAP),
        "width": WIDTH,
        "label_w": LABEL_W,
        "bar_h": BAR_H,
        "label_x": LABEL_W - 6,
    }


def lines(series: list[dict], keys: list[str], *, title: str, limit=None, limit_label: str = "") -> dict | None:
    """Cumulative lines over days (series: [{"day", key: value}]), with an optional horizontal limit (a budget)."""
    if len(series) < 1:
        return None
    w, h, pad_l, pad_b, pad_t = WIDTH, 200, 60, 24, 12
    top = max([float(p[k]) for p in series for k in keys] + ([float(limit)] if limit else []))
    if top <= 0:
        return None
    n = len(series)

    def x(i):
        return pad_l + (0 if n == 1 else i * (w - pad_l - 10) / (n - 1))

    def y(v):
        return round(pad_t + (h - pad_t - pad_b) * (1 - float(v) / top), 1)

    paths = []
    for k in keys:
        pts = " ".join(f"{round(x(i), 1)},{y(p[k])}" for i, p in enumerate(series))
        paths.append({"key": k, "points": pts, "last": f"{float(series[-1][k]):,.2f}"})
    return {
        "title": title,
        "width": w,
        "height": h,
        "paths": paths,
        "limit_y": y(limit) if limit else None,
        "limit_label": limit_label,
        "x0": pad_l,
        "x1": w - 10,
        "y_axis": h - pad_b,
        "top": f"{top:,.2f}",
        "first": str(series[0]["day"]),
        "lastday": str(series[-1]["day"]),
    }


def dataset_charts(dataset) -> dict:
    """The operations dashboard's figures: workers by mean catch F1, spend over time against the budget."""
    spend = spend_over_time(dataset)
    budget = spend["budget"]
    return {
        "workers": bars(worker_f1_histogram(dataset), title="Workers by mean catch-trial F1", fmt=lambda v: f"{v:d}"),
        "spend": lines(
            spend["series"],
            ["committed", "paid"],
            title="Spend over time (cumulative USD)",
            limit=budget if budget > 0 else None,
            limit_label=f"budget ${budget:,.2f}",
        ),
    }


def release_charts(stats: dict) -> dict:
    """A release's figures: labels per clip, labels by modality and by origin, agreement (Krippendorff's alpha)."""
    hist = stats.get("labels_per_clip_histogram") or {}
    agreement = stats.get("agreement") or {}
    alpha_keys = [k for k in ("audible", "visible", "background_music", "voice_over", "static_image") if k in agreement]
    return {
        "per_clip": bars(
            sorted(((k, v) for k, v in hist.items()), key=lambda kv: int(kv[0])),
            title="Clips by number of labels",
            fmt=lambda v: f"{v:d}",
        ),
        "modality": bars(
            list((stats.get("modality_counts") or {}).items()), title="Labels by modality", fmt=lambda v: f"{v:d}"
        ),
        "origin": bars(
            list((stats.get("origin_counts") or {}).items()), title="Labels by origin", fmt=lambda v: f"{v:d}"
        ),
        "agreement": bars(
            [(k.replace("_", " "), agreement.get(k)) for k in alpha_keys],
            title="Agreement (Krippendorff's alpha)",
            fmt=lambda v: f"{v:.2f}",
            max_value=1.0,
        ),
    }
