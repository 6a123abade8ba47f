"""Traffic arithmetic of the deployment hooks: always sums to 100, stable, pro rata."""

from __future__ import annotations

import pytest

from stacks.hooks.vertex import split_with, split_without


def test_first_deployment_takes_everything():
    assert split_with({}, "111", 10) == {"111": 100}


def test_canary_takes_its_share_from_the_old_model():
    assert split_with({"old": 100}, "new", 10) == {"new": 10, "old": 90}


def test_others_keep_their_proportions():
    assert split_with({"a": 60, "b": 40}, "new", 50) == {"new": 50, "a": 30, "b": 20}


def test_rounding_remainder_goes_to_the_largest():
    split = split_with({"a": 50, "b": 25, "c": 25}, "new", 1)
    assert split == {"new": 1, "a": 50, "b": 25, "c": 24} or split == {"new": 1, "a": 50, "b": 24, "c": 25}
    assert sum(split.values()) == 100


def test_promotion_leaves_others_at_zero():
    assert split_with({"old": 90, "new": 10}, "new", 100) == {"new": 100, "old": 0}


def test_others_at_zero_share_equally():
    assert split_with({"new": 100, "a": 0, "b": 0}, "new", 50) == {"new": 50, "a": 25, "b": 25}


def test_undeploy_hands_traffic_to_the_rest():
    assert split_without({"old": 90, "new": 10}, "old") == {"new": 100}
    assert split_without({"a": 50, "b": 30, "c": 20}, "a") == {"b": 60, "c": 40}
    assert split_without({"only": 100}, "only") == {}


@pytest.mark.parametrize("percent", range(0, 101, 7))
def test_always_sums_to_100(percent):
    split = split_with({"a": 33, "b": 33, "c": 34}, "new", percent)
    assert sum(split.values()) == 100 and split["new"] == percent
