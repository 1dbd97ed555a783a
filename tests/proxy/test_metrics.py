"""The proxy's Prometheus metrics: a histogram's buckets as Prometheus reads them."""

from __future__ import annotations

import bisect

from slotwise.proxy.metrics import LATENCY_BUCKETS, Histogram


def test_an_observation_lands_in_the_first_bucket_at_or_above_it() -> None:
    values = [0.0, -1.0, 5e-5, 1e-4, 1.5e-4, 0.003, 0.5, 10.0, 11.0, float("inf"), float("nan")]
    values += [bound * factor for bound in LATENCY_BUCKETS for factor in (0.999, 1.0, 1.001)]
    for value in values:
        histogram = Histogram("t", "t")
        histogram.observe(value)
        expected = [0] * (len(LATENCY_BUCKETS) + 1)
        expected[bisect.bisect_left(LATENCY_BUCKETS, value)] = 1  # le="bound" is inclusive
        assert histogram.counts == expected, value
        assert histogram.count == 1


def test_the_rendering_is_cumulative_with_an_inf_bucket() -> None:
    histogram = Histogram("slotwise_t_seconds", "t", buckets=(0.1, 1.0))
    for value in (0.05, 0.1, 0.5, 2.0):
        histogram.observe(value)
    lines = histogram.render()
    assert 'slotwise_t_seconds_bucket{le="0.1"} 2' in lines
    assert 'slotwise_t_seconds_bucket{le="1"} 3' in lines
    assert 'slotwise_t_seconds_bucket{le="+Inf"} 4' in lines
    assert "slotwise_t_seconds_count 4" in lines
