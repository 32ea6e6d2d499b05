"""Drift statistics with Evidently's default choices, and the data-quality checks.

Per column, missing and infinite values dropped first, the test is picked as Evidently
picks it by default:

  reference rows   column                                test            drift when
  <= 1000          numerical, > 5 distinct values        two-sample K-S  p-value <= 0.05
                   categorical, or <= 5 distinct values  chi-square      p-value < 0.05
                   ... of them only 2 distinct values    Z-test          p-value < 0.05
  > 1000           numerical, > 5 distinct values        Wasserstein     distance >= 0.1
                                                         (over the reference's std)
                   categorical, or <= 5 distinct values  Jensen-Shannon  distance >= 0.1

A p-value test on a large sample flags any tiny shift; that is why a large reference
switches to distances. The dataset drifts when the share of drifted columns reaches
`drift_share` (0.5 by default, as in Evidently).

Runs in the monitor's environment: numpy, scipy and pandas are imported inside the
functions (the agent's rule: the standard library only at module level).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

NUMERICAL = "numerical"
CATEGORICAL = "categorical"
# MLflow signature column types.
_NUMERIC_TYPES = {"double", "float", "long", "integer"}
_CATEGORICAL_TYPES = {"string", "boolean", "binary"}

SMALL_REFERENCE_ROWS = 1000
FEW_VALUES = 5
P_VALUE_THRESHOLD = 0.05
DISTANCE_THRESHOLD = 0.1
THRESHOLDS = {
    "ks": P_VALUE_THRESHOLD,
    "chisquare": P_VALUE_THRESHOLD,
    "z": P_VALUE_THRESHOLD,
    "wasserstein": DISTANCE_THRESHOLD,
    "jensenshannon": DISTANCE_THRESHOLD,
}
TEST_NAMES = {
    "ks": "K-S p-value",
    "chisquare": "chi-square p-value",
    "z": "Z-test p-value",
    "wasserstein": "Wasserstein distance (normed)",
    "jensenshannon": "Jensen-Shannon distance",
}
# Figures: numbers with this few distinct values are drawn as bars, one per value.
BAR_VALUES = 25
HISTOGRAM_BINS = 30
TOP_CATEGORIES = 20
# A continuous column's sample always reaches a little past the reference's extremes:
# out-of-range values count as an issue above this share of the rows.
OUT_OF_RANGE_ISSUE_SHARE = 0.01


@dataclass(frozen=True)
class ColumnDrift:
    column: str
    kind: str
    test: str  # a key of TEST_NAMES, or "" when a side has no values
    score: float | None
    threshold: float
    drifted: bool
    reference_values: int
    current_values: int

    @property
    def is_p_value(self) -> bool:
        return self.test in ("ks", "chisquare", "z")


def kind_of(values: pd.Series, declared: str | None = None) -> str:
    """NUMERICAL or CATEGORICAL: the signature's type when there is one, else the dtype."""
    import pandas as pd

    if declared in _NUMERIC_TYPES:
        return NUMERICAL
    if declared in _CATEGORICAL_TYPES:
        return CATEGORICAL
    numeric = pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values)
    return NUMERICAL if numeric else CATEGORICAL


def clean(values: pd.Series, kind: str) -> pd.Series:
    """The column as the tests see it: numbers (or strings), missing and infinite dropped."""
    import numpy as np
    import pandas as pd

    if kind == NUMERICAL:
        numbers = pd.to_numeric(values, errors="coerce").astype(float)
        return numbers.replace([np.inf, -np.inf], np.nan).dropna()
    return values.dropna().astype(str)


def pick_test(reference: pd.Series, current: pd.Series, kind: str) -> str:
    """Evidently's default test for these (cleaned) columns."""
    import pandas as pd

    distinct = pd.concat([reference, current]).nunique()
    few = kind == CATEGORICAL or distinct <= FEW_VALUES
    if len(reference) <= SMALL_REFERENCE_ROWS:
        if not few:
            return "ks"
        return "chisquare" if distinct > 2 else "z"
    return "jensenshannon" if few else "wasserstein"


def column_drift(column: str, ref: pd.Series, cur: pd.Series, kind: str) -> ColumnDrift:
    """The drift of one column; `ref` and `cur` as `clean` made them."""
    if ref.empty or cur.empty:
        return ColumnDrift(column, kind, "", None, 0.0, False, len(ref), len(cur))
    test = pick_test(ref, cur, kind)
    score = float(_SCORES[test](ref, cur))
    threshold = THRESHOLDS[test]
    if test == "ks":
        drifted = score <= threshold
    elif test in ("chisquare", "z"):
        drifted = score < threshold
    else:
        drifted = score >= threshold
    return ColumnDrift(column, kind, test, score, threshold, drifted, len(ref), len(cur))


def _ks(ref: pd.Series, cur: pd.Series) -> float:
    from scipy import stats

    return float(stats.ks_2samp(ref.to_numpy(), cur.to_numpy()).pvalue)


def _wasserstein(ref: pd.Series, cur: pd.Series) -> float:
    import numpy as np
    from scipy import stats

    norm = max(float(np.std(ref.to_numpy())), 0.001)
    return float(stats.wasserstein_distance(ref.to_numpy(), cur.to_numpy())) / norm


def _shares(ref: pd.Series, cur: pd.Series) -> tuple[Any, Any, list[Any]]:
    """Each value's share of the rows in reference and current, over their union."""
    ref_counts, cur_counts = ref.value_counts(), cur.value_counts()
    keys = sorted(set(ref_counts.index) | set(cur_counts.index), key=str)
    ref_shares = ref_counts.reindex(keys, fill_value=0).to_numpy() / len(ref)
    cur_shares = cur_counts.reindex(keys, fill_value=0).to_numpy() / len(cur)
    return ref_shares, cur_shares, keys


def _jensenshannon(ref: pd.Series, cur: pd.Series) -> float:
    from scipy.spatial import distance

    ref_shares, cur_shares, _ = _shares(ref, cur)
    return float(distance.jensenshannon(ref_shares, cur_shares))


def _chisquare(ref: pd.Series, cur: pd.Series) -> float:
    import numpy as np
    from scipy import stats

    ref_shares, cur_shares, _ = _shares(ref, cur)
    expected = ref_shares * len(cur)
    observed = cur_shares * len(cur)
    if np.any((expected == 0) & (observed > 0)):
        return 0.0  # a value the reference never had: as far from it as can be
    kept = expected > 0
    return float(stats.chisquare(observed[kept], expected[kept]).pvalue)


def _z(ref: pd.Series, cur: pd.Series) -> float:
    from scipy import stats

    keys = sorted(set(ref) | set(cur), key=str)
    if len(keys) < 2:
        return 1.0
    p1, p2 = float((ref != keys[0]).mean()), float((cur != keys[0]).mean())
    n1, n2 = len(ref), len(cur)
    pooled = (p1 * n1 + p2 * n2) / (n1 + n2)
    spread = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    if spread == 0:
        return 1.0
    return float(2 * (1 - stats.norm.cdf(abs((p1 - p2) / spread))))


_SCORES = {
    "ks": _ks,
    "wasserstein": _wasserstein,
    "jensenshannon": _jensenshannon,
    "chisquare": _chisquare,
    "z": _z,
}


@dataclass(frozen=True)
class Quality:
    """Data quality of the current inputs against the reference."""

    missing: dict[str, tuple[float, float, int]]  # column -> (ref share, cur share, cur count)
    unseen: dict[str, dict[str, int]]  # categorical column -> value never in the reference -> n
    out_of_range: dict[str, tuple[int, float, float, float]]  # column -> (n, share, ref min, max)
    new_columns: list[str]  # in the requests, not a model input
    missing_columns: list[str]  # a model input no request carried

    @property
    def issues(self) -> int:
        growing = [c for c, (ref, cur, _) in self.missing.items() if cur > ref]
        outside = [c for c, v in self.out_of_range.items() if v[1] > OUT_OF_RANGE_ISSUE_SHARE]
        return (
            len(growing)
            + len(self.unseen)
            + len(outside)
            + len(self.new_columns)
            + len(self.missing_columns)
        )


def quality(
    cleaned: dict[str, tuple[pd.Series, pd.Series]],
    kinds: dict[str, str],
    rows: tuple[int, int],
    new_columns: list[str],
    missing_columns: list[str],
) -> Quality:
    """Missing values, unseen categories and values outside the reference's range, for
    the model inputs both sides have: `cleaned` holds each column as `clean` made it
    from the reference's and the current `rows`."""
    missing: dict[str, tuple[float, float, int]] = {}
    unseen: dict[str, dict[str, int]] = {}
    out_of_range: dict[str, tuple[int, float, float, float]] = {}
    ref_rows, cur_rows = rows
    for column, kind in kinds.items():
        ref_clean, cur_clean = cleaned[column]
        cur_missing = cur_rows - len(cur_clean)
        ref_share = 1 - len(ref_clean) / max(ref_rows, 1)
        if cur_missing or ref_share:
            missing[column] = (ref_share, cur_missing / max(cur_rows, 1), cur_missing)
        if kind == CATEGORICAL:
            new = cur_clean[~cur_clean.isin(set(ref_clean))]
            if len(new):
                unseen[column] = {str(k): int(v) for k, v in new.value_counts().items()}
        elif len(ref_clean) and len(cur_clean):
            low, high = float(ref_clean.min()), float(ref_clean.max())
            outside = int(((cur_clean < low) | (cur_clean > high)).sum())
            if outside:
                out_of_range[column] = (outside, outside / len(cur_clean), low, high)
    return Quality(missing, unseen, out_of_range, sorted(new_columns), sorted(missing_columns))


def distribution(ref: pd.Series, cur: pd.Series, kind: str) -> dict[str, Any]:
    """What a figure draws for one column (as `clean` made it): shares of the rows per
    bar or per bin."""
    import numpy as np
    import pandas as pd

    both = pd.concat([ref, cur])
    if kind == CATEGORICAL or both.nunique() <= BAR_VALUES:
        ref_counts, cur_counts = ref.value_counts(), cur.value_counts()
        order = list((ref_counts.add(cur_counts, fill_value=0)).sort_values(ascending=False).index)
        if kind == NUMERICAL:  # at most BAR_VALUES bars, in order
            kept, rest = sorted(order), []
        else:  # the most frequent categories, the others as one bar
            kept, rest = order[:TOP_CATEGORIES], order[TOP_CATEGORIES:]

        def shares(counts: pd.Series, total: int) -> list[float]:
            values = [float(counts.get(k, 0)) / max(total, 1) for k in kept]
            if rest:
                values.append(float(counts.reindex(rest, fill_value=0).sum()) / max(total, 1))
            return values

        labels = [_label(k) for k in kept] + (["(other)"] if rest else [])
        return {
            "type": "bars",
            "labels": labels,
            "reference": shares(ref_counts, len(ref)),
            "current": shares(cur_counts, len(cur)),
        }
    edges = np.histogram_bin_edges(both.to_numpy(), bins=HISTOGRAM_BINS)
    return {
        "type": "histogram",
        "edges": [float(e) for e in edges],
        "reference": (np.histogram(ref.to_numpy(), edges)[0] / max(len(ref), 1)).tolist(),
        "current": (np.histogram(cur.to_numpy(), edges)[0] / max(len(cur), 1)).tolist(),
    }


def _label(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)
