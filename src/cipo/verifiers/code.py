"""Code verifier: run the completion's program against the reference's tests in a sandbox.

Per completion (reference format: ``code_reference.py``; sandbox and threat model:
``sandbox.py``; in-process test runner: ``harness.py``):
  1. the program is the completion's last fenced code block; none -> ``no_code``. Function
     style: the prompt is put in front when the block does not define the entry point.
  2. function style: one sandboxed process runs the program and every test statement of
     ``check(candidate)`` with ``test_timeout_s`` each and ``sample_timeout_s`` in all. It counts
     as passed only when the harness reports, with the per-sample nonce, that it finished.
     stdio style: one sandboxed process per test (fed the input, stdout compared after
     normalising trailing whitespace), ``test_timeout_s`` each, ``sample_timeout_s`` in all
     (tests left when the budget runs out count as timed out).
  3. status: ``passed`` when every test passed; otherwise the status of the first test that did
     not: ``failed`` (wrong answer), ``timeout``, ``memory_exceeded``, ``runtime_error``, or
     ``syntax_error`` for the whole program. ``error`` when the verifier itself failed.
``success`` is all-pass; ``score`` the fraction of tests passed; ``reward`` is 1/0 on success
(``reward: all_pass``) or the score (``reward: fraction``). ``feedback`` holds the first
``feedback_lines`` lines about the first failure (for the correction template's {feedback}).
Samples run ``num_workers`` at a time on a thread pool (each sample is its own process).
"""

from __future__ import annotations

import secrets
import threading
from concurrent.futures import ThreadPoolExecutor

from cipo.code_reference import (
    FunctionReference,
    StdioReference,
    extract_program,
    normalize_output,
    parse_reference,
    with_prompt,
)
from cipo.types import VerifierResult, VerifyStatus
from cipo.verifiers.sandbox import Limits, RunResult, Sandbox

S = VerifyStatus
_STATUSES = {"failed", "syntax_error", "runtime_error", "memory_exceeded", "timeout", "error"}


def _signal_name(returncode: int | None) -> str:
    import signal

    if returncode is not None and returncode < 0:
        try:
            return f"killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"killed by signal {-returncode}"
    return f"exit code {returncode}"


class CodeVerifier:
    """Batch verifier (the ``Verifier`` protocol) for code problems. Threads start on first use."""

    def __init__(
        self,
        num_workers: int = 2,
        sample_timeout_s: float = 20.0,
        test_timeout_s: float = 5.0,
        memory_mb: int = 1024,
        max_output_bytes: int = 8 * 2**20,
        max_processes: int = 64,
        reward: str = "all_pass",
        feedback_lines: int = 8,
        isolation: str = "auto",
        sandbox_uid: int | None = 65534,
        python: str | None = None,
    ) -> None:
        checks = {
            "num_workers": num_workers >= 1,
            "sample_timeout_s": sample_timeout_s > 0,
            "test_timeout_s": 0 < test_timeout_s <= sample_timeout_s,
            "memory_mb": memory_mb >= 64,
            "max_output_bytes": max_output_bytes >= 1024,
            "max_processes": max_processes >= 1,
            "feedback_lines": feedback_lines >= 0,
        }
        for key, ok in checks.items():
            if not ok:
                raise ValueError(f"verifier.{key}={locals()[key]!r} is out of range (see conf/verifier/code.yaml)")
        if reward not in ("all_pass", "fraction"):
            raise ValueError(f"verifier.reward must be all_pass or fraction, got {reward!r}")
        if isolation not in ("auto", "none", "require"):
            raise ValueError(f"verifier.isolation must be auto, none or require, got {isolation!r}")
        self.num_workers, self.sample_timeout_s, self.test_timeout_s = num_workers, sample_timeout_s, test_timeout_s
        self.reward_mode, self.feedback_lines = reward, feedback_lines
        limits = Limits(memory_mb=memory_mb, output_bytes=max_output_bytes, processes=max_processes)
        self.sandbox = Sandbox(limits, isolation, sandbox_uid, python)
        self._executor: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_executor"], state["_lock"] = None, None
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def close(self) -> None:
        with self._lock:
            if self._executor is not None:
                self._executor.shutdown(wait=True)
            self._executor = None

    def __call__(self, completions: list[str], references: list[str]) -> list[VerifierResult]:
        if len(completions) != len(references):
            raise ValueError(f"{len(completions)} completions but {len(references)} references")
        if not completions:
            return []
        _ = self.sandbox.python  # probe the interpreter once, before the threads start
        with self._lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(self.num_workers, thread_name_prefix="cipo-code-verifier")
            futures = [self._executor.submit(self.verify_one, c, r) for c, r in zip(completions, references)]
        return [f.result() for f in futures]

    # --- one sample -----------------------------------------------------------------------

    def verify_one(self, completion: str, reference: str) -> VerifierResult:
        try:
            ref = parse_reference(reference)
        except ValueError as error:  # the data's fault, not the policy's: a counted skip
            return VerifierResult(False, 0.0, S.SKIPPED, f"bad reference: {error}")
        program = extract_program(completion)
        if program is None:
            return VerifierResult(False, 0.0, S.NO_CODE, "no fenced code block (```python ... ```) found", 0.0)
        try:
            if isinstance(ref, FunctionReference):
                return self._function(with_prompt(program, ref), ref)
            return self._stdio(program, ref)
        except Exception as error:  # the verifier's own failure must never stop training
            return VerifierResult(False, 0.0, S.ERROR, f"verifier error: {type(error).__name__}: {error}")

    def _result(self, status: str, passed: int, total: int, feedback: str) -> VerifierResult:
        success = status == "passed" and total > 0 and passed == total
        score = passed / total if total else 0.0
        reward = float(success) if self.reward_mode == "all_pass" else score
        lines = feedback.strip().splitlines()[: self.feedback_lines]
        return VerifierResult(success, reward, VerifyStatus(status), "\n".join(lines), score)

    def _function(self, program: str, ref: FunctionReference) -> VerifierResult:
        nonce = secrets.token_hex(16)
        run = self.sandbox.run(
            "function",
            program,
            test=ref.test,
            entry_point=ref.entry_point,
            stdin=f"{nonce}\n".encode(),
            timeout_s=self.sample_timeout_s,
            test_timeout_s=self.test_timeout_s,
            nonce=nonce,
        )
        tests = [r for r in run.reports if "test" in r]
        total = next((r["total"] for r in run.reports if "total" in r), 0)
        passed = sum(r.get("status") == "passed" for r in tests)
        done = any(r.get("done") is True for r in run.reports)
        # the first thing that went wrong decides: the program, a setup statement or a test
        first = next((r for r in run.reports if r.get("status") not in (None, "passed")), None)
        if first is not None:
            status = first["status"] if first["status"] in _STATUSES else "runtime_error"
            return self._result(status, passed, total, first.get("error", ""))
        if run.timed_out:
            return self._result("timeout", passed, total, f"the sample ran past {self.sample_timeout_s:g} s")
        if not done:  # exited (sys.exit/os._exit/a signal) before the harness finished
            return self._result("runtime_error", passed, total, f"the tests did not finish ({self._why(run)})")
        return self._result("passed", passed, total, "")

    def _stdio(self, program: str, ref: StdioReference) -> VerifierResult:
        import time

        deadline = time.monotonic() + self.sample_timeout_s
        passed, first_status, first_feedback = 0, None, ""
        for index, (given, expected) in enumerate(zip(ref.inputs, ref.outputs)):
            left = deadline - time.monotonic()
            if left <= 0:
                status, feedback = "timeout", f"no time left for test {index} ({self.sample_timeout_s:g} s budget)"
            else:
                run = self.sandbox.run("stdio", program, stdin=given.encode(), timeout_s=min(self.test_timeout_s, left))
                status, feedback = self._stdio_status(run, expected, index)
            if status == "passed":
                passed += 1
            elif first_status is None:
                first_status, first_feedback = status, feedback
            if status == "syntax_error":
                break  # every other test would say the same
        total = len(ref.inputs)
        return self._result(first_status or "passed", passed, total, first_feedback)

    def _stdio_status(self, run: RunResult, expected: str, index: int) -> tuple[str, str]:
        report = next((r for r in run.reports if r.get("status")), None)
        if report is not None and report["status"] == "syntax_error":
            return "syntax_error", report.get("error", "")
        if run.timed_out:
            return "timeout", f"test {index}: ran past {self.test_timeout_s:g} s"
        if report is not None:
            return report["status"], f"test {index}: {report.get('error', '')}"
        if run.returncode != 0:
            return "runtime_error", f"test {index}: {self._why(run)}"
        got = normalize_output(run.stdout.decode("utf-8", errors="replace"))
        if got == normalize_output(expected):
            return "passed", ""
        return "failed", f"test {index}: expected {normalize_output(expected)[:200]!r}, got {got[:200]!r}"

    @staticmethod
    def _why(run: RunResult) -> str:
        tail = run.stderr.decode("utf-8", errors="replace").strip().splitlines()[-3:]
        return _signal_name(run.returncode) + (": " + " | ".join(tail) if tail else "")
