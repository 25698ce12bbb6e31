import pytest

from cipo.algorithms.config import AlgorithmConfig


def test_transplant_and_dynamic_sampling_are_refused_together():
    """A transplant can make a group informative after dynamic sampling dropped it: not supported."""
    both = {"dynamic_sampling": {"enabled": True}, "correction": {"transplant": True}}
    with pytest.raises(
        ValueError, match=r"algorithm\.correction\.transplant: cannot be combined with dynamic_sampling"
    ):
        AlgorithmConfig.from_dict(both)
    AlgorithmConfig.from_dict({"dynamic_sampling": {"enabled": True}})  # each on its own is fine
    AlgorithmConfig.from_dict({"correction": {"transplant": True}})
    AlgorithmConfig.from_dict({**both, "correction": {"transplant": True, "enabled": False}})  # grpo: inert
