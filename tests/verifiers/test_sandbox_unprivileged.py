"""The sandbox started by a trainer that is not root: no uid switch and no cgroups, but a user
namespace (root inside, this user outside) for the PID, mount, IPC and network namespaces. The
program and the judge then share a uid; the program holds no capabilities, so it cannot trace
the judge, and the judge is the namespace's init, which ignores signals it has no handler for.
Run here as ``nobody`` with the system Python (the trainer side needs only the standard library)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src"
SCRIPT = r"""
import json
from cipo.verifiers.code import CodeVerifier
from cipo.code_reference import function_reference
ref = function_reference("def f(x):\n", "def check(candidate):\n    assert candidate(1) == 2\n", "f")
programs = {
    "honest": "def f(x):\n    return 2 * x",
    "patched_exec": "import builtins\nbuiltins.exec = lambda *a, **k: None\ndef f(x):\n    return x",
    "equals_all": "class A:\n    def __eq__(self, o):\n        return True\ndef f(x):\n    return A()",
    "kills_judge": "import os\nfor p in {1, os.getppid()}:\n    try:\n        os.kill(p, 9)\n"
    "    except OSError:\n        pass\ndef f(x):\n    return 2 * x",
    "traces_judge": "import ctypes\nassert ctypes.CDLL(None).ptrace(16, 1, 0, 0) != 0\ndef f(x):\n    return 2 * x",
    "alarms_judge": "import os, signal\ndef f(x):\n    os.kill(1, signal.SIGALRM)\n    return x",
}
verifier = CodeVerifier(num_workers=1, python="/usr/bin/python3", sample_timeout_s=10, test_timeout_s=3)
results = verifier([f"```python\n{code}\n```" for code in programs.values()], [ref] * len(programs))
print(json.dumps({"protections": verifier.sandbox.protections,
                  "statuses": {name: r.status.value for name, r in zip(programs, results)}}))
verifier.close()
"""


@pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("su") or not Path("/usr/bin/python3").exists(),
    reason="needs root (to become nobody), su and /usr/bin/python3",
)
def test_a_non_root_trainer_still_judges_out_of_reach():
    done = subprocess.run(
        ["su", "-s", "/bin/sh", "nobody", "-c", f"cd / && PYTHONPATH={SRC} /usr/bin/python3 -"],
        input=SCRIPT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    if not report["protections"]["namespaces"]:
        pytest.skip("user namespaces are not available to this user here")
    assert report["protections"]["uid"] is None  # no uid switch without root
    statuses = report["statuses"]
    assert statuses["honest"] == statuses["kills_judge"] == statuses["traces_judge"] == "passed", statuses
    assert all(statuses[name] != "passed" for name in ("patched_exec", "equals_all", "alarms_judge")), statuses
