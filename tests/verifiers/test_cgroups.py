"""A sample cgroup carries its limits, and swap cannot carry a sample past its memory cap."""

from __future__ import annotations

import pytest

from cipo.verifiers.cgroups import SampleCgroup
from cipo.verifiers.sandbox import cgroup_layout


@pytest.fixture
def layout():
    found = cgroup_layout()
    if found is None or found.memory is None:
        pytest.skip("no writable cgroup memory hierarchy here (needs root)")
    return found


def test_a_sample_cgroup_has_its_limits_and_no_swap(layout):
    cgroup = SampleCgroup(layout, 64 * 2**20, 8)
    try:
        memory = cgroup.folders[0]
        if layout.version == 2:
            assert (memory / "memory.max").read_text().strip() == str(64 * 2**20)
            assert (memory / "memory.swap.max").read_text().strip() == "0"
            assert (memory / "pids.max").read_text().strip() == "8"
        else:
            assert (memory / "memory.limit_in_bytes").read_text().strip() == str(64 * 2**20)
            # whether or not swap accounting (memsw) exists, the sample's pages are never swapped out
            assert (memory / "memory.swappiness").read_text().strip() == "0"
            if layout.pids is not None:
                assert (cgroup.folders[-1] / "pids.max").read_text().strip() == "8"
    finally:
        folders = list(cgroup.folders)
        cgroup.remove()
    assert not any(folder.exists() for folder in folders)
