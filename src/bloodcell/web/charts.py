"""ECharts option builders: plain dicts, so the charts are testable without a browser."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bloodcell.contract import LABELS
from bloodcell.slides.differential import Differential
from bloodcell.slides.vocabulary import label_words

BLUE, AMBER, RED = "#1e88e5", "#f9a825", "#e53935"


def probability_chart(probabilities: Mapping[str, float], uncertain: bool = False) -> dict[str, Any]:
    """The four class probabilities as horizontal bars, the winner highlighted."""
    top = max(LABELS, key=lambda label: probabilities.get(label, 0.0))
    colour = AMBER if uncertain else BLUE
    data = [
        {
            "value": round(100 * float(probabilities.get(label, 0.0)), 1),
            "itemStyle": {"color": colour if label == top else "#b0bec5"},
        }
        for label in LABELS
    ]
    return {
        "animation": False,
        "grid": {"left": 90, "right": 48, "top": 4, "bottom": 4},
        "xAxis": {"type": "value", "min": 0, "max": 100, "show": False},
        "yAxis": {
            "type": "category",
            "inverse": True,
            "data": [label_words(label) for label in LABELS],
            "axisTick": {"show": False},
            "axisLine": {"show": False},
        },
        "series": [
            {
                "type": "bar",
                "data": data,
                "barWidth": "60%",
                "label": {"show": True, "position": "right", "formatter": "{c} %"},
                "showBackground": True,
                "backgroundStyle": {"color": "#f1f3f4"},
            }
        ],
        "tooltip": {"trigger": "axis", "axisPointer": {"type": "shadow"}},
    }


def differential_chart(diff: Differential) -> dict[str, Any]:
    """Observed percentages as bars, the reference range drawn as a band behind each bar."""
    names = [label_words(row.label) for row in diff.rows]
    observed = [
        {
            "value": None if row.percent is None else round(row.percent, 1),
            "itemStyle": {"color": RED if row.flag else BLUE},
        }
        for row in diff.rows
    ]
    return {
        "animation": False,
        "legend": {"data": ["This batch", "Reference range"], "bottom": 0},
        "grid": {"left": 48, "right": 16, "top": 16, "bottom": 48},
        "xAxis": {"type": "category", "data": names},
        "yAxis": {"type": "value", "min": 0, "max": 100, "axisLabel": {"formatter": "{value} %"}},
        "series": [
            {
                "name": "This batch",
                "type": "bar",
                "barWidth": "45%",
                "data": observed,
                "label": {"show": True, "position": "top", "formatter": "{c} %"},
            },
            # the band, drawn over the bar: an invisible bar up to the low limit, then the range
            {
                "type": "bar",
                "stack": "ref",
                "silent": True,
                "barWidth": "45%",
                "barGap": "-100%",
                "itemStyle": {"color": "transparent"},
                "data": [row.ref_low for row in diff.rows],
            },
            {
                "name": "Reference range",
                "type": "bar",
                "stack": "ref",
                "barWidth": "45%",
                "barGap": "-100%",
                "itemStyle": {
                    "color": "rgba(67, 160, 71, 0.30)",
                    "borderColor": "#2e7d32",
                    "borderWidth": 1,
                    "borderType": "dashed",
                },
                "data": [row.ref_high - row.ref_low for row in diff.rows],
            },
        ],
    }
