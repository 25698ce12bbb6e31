"""The code verifier with namespaces (``auto``) and without them (``none``, the stated fallback):
the fixture the reward-hack and judge-attack suites run every case on."""

from __future__ import annotations

import pytest

from cipo.verifiers.code import CodeVerifier


@pytest.fixture(scope="module", params=["auto", "none"])
def verifier(request):
    verifier = CodeVerifier(num_workers=2, sample_timeout_s=8, test_timeout_s=3, isolation=request.param)
    yield verifier
    verifier.close()


def run(verifier, code: str, ref: str):
    """The verdict on one program (the completion is the program in a python fence)."""
    [result] = verifier([f"```python\n{code}\n```"], [ref])
    return result
