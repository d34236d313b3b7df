"""Tables as Markdown without extra dependencies."""

from __future__ import annotations

import math

import pandas as pd


def _cell(v: object, digits: int) -> str:
    if isinstance(v, float):
        if math.isnan(v):
            return "–"
        if abs(v) >= 1e4 or (v != 0 and abs(v) < 1e-3):
            return f"{v:.{digits}g}"
        return f"{v:.{digits}f}".rstrip("0").rstrip(".")
    return str(v).replace("|", "\\|")


def to_markdown(df: pd.DataFrame, digits: int = 3, index: bool = True) -> str:
    """A GitHub-flavoured Markdown table of `df`; floats rounded to `digits` decimals, NaN shown as –."""
    cols = ([df.index.name or ""] if index else []) + [str(c) for c in df.columns]
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    for idx, row in df.iterrows():
        cells = ([_cell(idx, digits)] if index else []) + [_cell(v, digits) for v in row.tolist()]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
