"""Numbers for metrics.json: floats rounded to 6 digits, NaN as null (JSON has no NaN)."""

import math


def num(x) -> float | None:
    x = float(x)
    return None if math.isnan(x) else round(x, 6)


def nums(xs) -> list[float | None]:
    return [num(x) for x in xs]
