"""leetcode_examples: DebugBench-style rows -> function-style tests that pass the right
solution and fail the buggy one (run here the way a function-style verifier runs them)."""

from __future__ import annotations

import json

import pytest

from cipo.data.errors import RowError
from cipo.data.leetcode import leetcode_examples

SOLUTION = """class Solution:
    def helper(self, x):
        return x

    def twoSum(self, nums: List[int], target: int) -> List[int]:
        seen = {}
        for i, n in enumerate(nums):
            if target - n in seen:
                return [seen[target - n], i]
            seen[n] = i
"""
BUGGY = SOLUTION.replace("return [seen[target - n], i]", "return [i, seen[target - n]]")
ROW = {
    "examples": [
        "Input: nums = [2,7,11,15], target = 9\nOutput: [0,1]\nExplanation: nums[0] + nums[1] == 9.",
        "Input: nums = [3,2,4], target = 6\nOutput: [1,2]",
    ],
    "solution": SOLUTION,
}


def passes(reference: str, program: str) -> bool:
    ref = json.loads(reference)
    namespace: dict = {}
    exec(ref["prompt"] + program + "\n" + ref["test"], namespace)
    try:
        namespace["check"](namespace[ref["entry_point"]])
    except AssertionError:
        return False
    return True


def test_examples_become_asserts_on_the_matching_method():
    reference = leetcode_examples(ROW)
    ref = json.loads(reference)
    assert ref["kind"] == "function" and ref["entry_point"] == "Solution"
    assert "candidate().twoSum(nums = [2,7,11,15], target = 9) == ([0,1])" in ref["test"]
    assert passes(reference, SOLUTION) and not passes(reference, BUGGY)


def test_json_booleans_and_string_examples():
    row = {
        "examples": json.dumps(['Input: s = "ab", flag = true\nOutput: false']),
        "solution": "class Solution:\n    def f(self, s: str, flag: bool) -> bool:\n        return not flag\n",
    }
    assert passes(leetcode_examples(row), row["solution"])


@pytest.mark.parametrize(
    "row, match",
    [
        ({**ROW, "examples": ["nums = [1]"]}, "example 1 has no 'Input: ... Output: ...'"),
        ({**ROW, "examples": ["Input: [1,2]\nOutput: 3"]}, "input is not 'name = value, ...'"),
        ({**ROW, "examples": ["Input: x = [1,\nOutput: 3"]}, "example 1 is not Python-like"),
        ({**ROW, "examples": ["Input: nums = [1], k = 2\nOutput: 3"]}, r"no Solution method taking \['k', 'nums'\]"),
        ({**ROW, "solution": "def f(:"}, "is not valid Python"),
        ({**ROW, "solution": "def twoSum(nums, target): pass"}, "has no class Solution"),
        ({**ROW, "examples": []}, "must be a non-empty list"),
        (
            {
                "examples": ["Input: head = [1,2]\nOutput: [2,1]"],
                "solution": "class Solution:\n    def rev(self, head: Optional[ListNode]) -> Optional[ListNode]: ...",
            },
            "takes ListNode/TreeNode/Node objects",
        ),
    ],
)
def test_rows_that_cannot_be_tested_are_row_errors(row, match):
    with pytest.raises(RowError, match=match):
        leetcode_examples(row)
