"""The push bench's arithmetic (Target 7, `local_stack.bench.push_freshness`): the rate expressions it reads the
poll's period from, and the percentile it reports."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st
from local_stack.bench.push_freshness import percentile, rate_seconds


@pytest.mark.parametrize(
    ("expression", "seconds"),
    [("rate(1 minute)", 60), ("rate(5 minutes)", 300), ("rate(15 minutes)", 900), ("rate(2 hours)", 7200)],
)
def test_a_rate_expression_is_its_period_in_seconds(expression, seconds):
    assert rate_seconds(expression) == seconds


@pytest.mark.parametrize("expression", ["cron(0/5 * * * ? *)", "rate(five minutes)", "5 minutes"])
def test_anything_else_is_refused(expression):
    with pytest.raises(ValueError, match="not a rate expression"):
        rate_seconds(expression)


@given(st.lists(st.floats(0, 1e4, allow_nan=False), min_size=1, max_size=60), st.sampled_from([0.5, 0.9, 0.99, 1.0]))
def test_the_percentile_is_the_smallest_measured_value_with_that_share_at_or_below_it(values, share):
    result = percentile(values, share)
    assert result in values
    assert sum(v <= result for v in values) >= math.ceil(share * len(values))
    assert all(
        sum(v <= smaller for v in values) < math.ceil(share * len(values)) for smaller in values if smaller < result
    )
