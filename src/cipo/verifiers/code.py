"""Code verifier: run the completion's program against the reference's tests in a sandbox.

Per completion (reference format: ``cipo/code_reference.py``; sandbox and threat model:
``sandbox.py``; the test runner inside it: ``isolated/judge.py``):
  1. the program is the completion's last fenced code block; none -> ``no_code``. Function
     style: the prompt is put in front when the block does not define the entry point.
  2. function style: one sandbox per sample; the program runs in a process of its own, every
     test statement of ``check(candidate)`` runs in the judge (calling the program over a
     socket), ``test_timeout_s`` each and ``sample_timeout_s`` in all. It counts as passed only
     when the judge reports, with the per-sample nonce, that it finished.
     stdio style: one sandbox per sample, a fresh process per test (fed the input; its stdout
     compared here after normalising trailing whitespace), ``test_timeout_s`` each,
     ``sample_timeout_s`` in all (tests left when the budget runs out count as timed out).
  3. status: ``passed`` when every test passed; otherwise the status of the first test that did
     not: ``failed`` (wrong answer), ``timeout``, ``memory_exceeded``, ``runtime_error``, or
     ``syntax_error`` for the whole program. ``error`` when the verifier itself failed.
``success`` is all-pass; ``score`` the fraction of tests passed; ``reward`` is 1/0 on success
(``reward: all_pass``) or the score (``reward: fraction``). ``feedback`` holds the first
``feedback_lines`` lines about the first failure (for the correction template's {feedback}).
Samples run ``num_workers`` at a time on a thread pool (each sample is its own process).
"""

from __future__ import annotations

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
from cipo.verifiers.sandbox import DEFAULT_UID_BASE, Limits, Sandbox, stdio_output

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


def _tail(text: str, lines: int = 3) -> str:
    kept = text.strip().splitlines()[-lines:]
    return ": " + " | ".join(kept) if kept else ""


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
        sandbox_uid: int | None = DEFAULT_UID_BASE,
        python: str | None = None,
        scratch_mb: int = 64,
        scratch_files: int = 4096,
        cgroups: str = "auto",
    ) -> None:
        checks = {
            "num_workers": num_workers >= 1,
            "sample_timeout_s": sample_timeout_s > 0,
            "test_timeout_s": 0 < test_timeout_s <= sample_timeout_s,
            "memory_mb": memory_mb >= 64,
            "max_output_bytes": max_output_bytes >= 1024,
            "max_processes": max_processes >= 1,
            "feedback_lines": feedback_lines >= 0,
            "scratch_mb": scratch_mb >= 1,
            "scratch_files": scratch_files >= 16,
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
        limits = Limits(memory_mb, max_output_bytes, max_processes, scratch_mb, scratch_files)
        self.sandbox = Sandbox(limits, isolation, sandbox_uid, python, cgroups)
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
        """Stop the worker threads and the sandbox launcher (both restart on the next call)."""
        with self._lock:
            if self._executor is not None:
                self._executor.shutdown(wait=True)
            self._executor = None
            self.sandbox.close()

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
        run = self.sandbox.run_function(
            program, ref.prompt, ref.test, ref.entry_point, self.test_timeout_s, self.sample_timeout_s
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
        if not done:  # the judge itself failed: the verifier's fault, not the program's
            why = f"the sandbox ended without a verdict ({_signal_name(run.returncode)}{_tail(run.stderr)})"
            return self._result("error", passed, total, why)
        return self._result("passed", passed, total, "")

    def _stdio(self, program: str, ref: StdioReference) -> VerifierResult:
        run = self.sandbox.run_stdio(program, list(ref.inputs), self.test_timeout_s, self.sample_timeout_s)
        records = {r["test"]: r for r in run.reports if isinstance(r.get("test"), int)}
        passed, first_status, first_feedback = 0, None, ""
        for index, expected in enumerate(ref.outputs):
            if index in records:
                status, feedback = self._stdio_status(records[index], expected, index)
            elif first_status == "syntax_error":
                break  # not run: every test would say the same
            elif run.timed_out:
                status, feedback = "timeout", f"no time left for test {index} ({self.sample_timeout_s:g} s budget)"
            else:
                why = f"{_signal_name(run.returncode)}{_tail(run.stderr)}"
                status, feedback = "error", f"test {index}: the sandbox ended without a verdict ({why})"
            if status == "passed":
                passed += 1
            elif first_status is None:
                first_status, first_feedback = status, feedback
        return self._result(first_status or "passed", passed, len(ref.inputs), first_feedback)

    def _stdio_status(self, record: dict, expected: str, index: int) -> tuple[str, str]:
        status = record.get("status")
        if status == "syntax_error":
            return "syntax_error", record.get("error", "")
        if record.get("timed_out"):
            return "timeout", f"test {index}: ran past {self.test_timeout_s:g} s"
        if status is not None:
            status = status if status in _STATUSES else "runtime_error"
            return status, f"test {index}: {record.get('error', '')}" + _tail(record.get("stderr") or "")
        got = normalize_output(stdio_output(record).decode("utf-8", errors="replace"))
        if got == normalize_output(expected):
            return "passed", ""
        return "failed", f"test {index}: expected {normalize_output(expected)[:200]!r}, got {got[:200]!r}"
