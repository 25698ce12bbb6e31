"""Math verifier: final-answer extraction + math-verify equivalence, in worker processes.

Per completion:
  1. (parent) find the answer: last ``\\boxed{}``, then the configured fallbacks
     (``math_answer.py``). None -> ``no_answer`` (after the gold check below).
  2. (worker) both answers go through ``math_rules.normalize`` (Unicode fractions and digits,
     ``1e3``, repeating decimals) and lose a known unit (``math_rules.unit_of``): two
     different units -> ``wrong``. Two plain integers are compared as digit strings (any length).
  3. (worker) parse the gold answer: plain numbers, LaTeX with or without ``$``, boxed.
     Nothing sympy could read (or the parse timed out) -> ``unparseable_gold``, a counted
     skip: the rollout drops the group, never a reward and never a penalty.
  4. (worker) parse the prediction the same way; nothing at all -> ``malformed``.
  5. (worker) ``math_verify.verify(gold, prediction)``, gold FIRST (it is not symmetric), one
     pair of parses at a time so that a math-verify timeout is seen (its ``verify`` turns a
     timeout into ``False``, which would penalise a correct answer that is slow to compare):
     any pair equal -> ``ok`` (unless a finite decimal answer is not exactly the gold:
     ``math_rules.decimal_mismatch``); else a timed-out pair -> ``timeout``; else ``wrong``.

Two timeouts, because math-verify's own uses ``signal.alarm`` (main thread only, whole
seconds, and it cannot interrupt a long C call such as a huge integer power):
  * ``parsing_timeout_s`` / ``compare_timeout_s``: math-verify's, inside the worker (cheap: the
    worker survives);
  * ``deadline_s``: the parent's hard limit per item (``pool.py``): the worker is killed and
    replaced, the item is ``timeout``. A worker that crashes gives ``error``.
``worker_memory_mb`` caps how much address space each worker may add, so a blow-up inside
sympy is a ``MemoryError`` (-> ``error``) in the worker instead of the kernel's OOM killer
choosing the trainer.
"""

from __future__ import annotations

import logging
import resource
import sys
from collections.abc import Sequence
from dataclasses import dataclass

from cipo.types import VerifierResult, VerifyStatus
from cipo.verifiers import math_rules
from cipo.verifiers.math_answer import compile_fallbacks, extract_answer, strip_math_delimiters
from cipo.verifiers.pool import Outcome, WorkerPool

# Integers longer than Python's default 4300 digits are parsed by sympy (within the timeouts).
MAX_INT_DIGITS = 100_000


@dataclass(frozen=True)
class MathSettings:
    """math-verify options passed to the worker with every item."""

    parsing_timeout_s: int = 2
    compare_timeout_s: int = 2
    float_rounding: int = 6
    numeric_precision: int = 15
    strict: bool = True


@dataclass(frozen=True)
class MathJob:
    gold: str
    answer: str | None
    settings: MathSettings


def _address_space_bytes() -> int:
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmSize:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def init_worker(memory_mb: int | None) -> None:
    """Runs once in every worker: memory cap, quiet logs, math-verify imported and warm.

    The cap is ``memory_mb`` on top of the worker's size at start: a forkserver worker inherits
    whatever the forkserver imported (it preloads the trainer's ``__main__``, which can mean
    torch with CUDA libraries mapped, gigabytes of address space); an absolute cap below that
    would make every allocation fail.
    """
    if memory_mb:
        limit = _address_space_bytes() + int(memory_mb) * 2**20
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    for name in ("math_verify", "latex2sympy2_extended"):
        logging.getLogger(name).setLevel(logging.CRITICAL)  # timeouts are reported as statuses
    if hasattr(sys, "set_int_max_str_digits"):
        sys.set_int_max_str_digits(MAX_INT_DIGITS)
    from math_verify import parse

    parse("$1$", parsing_timeout=None)


def _parse(text: str, timeout_s: int) -> list:
    """math-verify parses of one (normalised) answer string; raises math-verify's TimeoutException."""
    from math_verify import ExprExtractionConfig, LatexExtractionConfig, parse

    if not text:
        return []
    config = [LatexExtractionConfig(boxed_match_priority=0), ExprExtractionConfig()]
    return parse(f"${text}$", config, parsing_timeout=timeout_s, raise_on_error=True)


def check_job(job: MathJob) -> tuple[str, str]:
    """(status value, feedback) for one item; runs in a worker process."""
    from math_verify import verify
    from math_verify.errors import TimeoutException
    from sympy import Basic, MatrixBase

    s = job.settings
    gold_text, gold_unit = math_rules.unit_of(math_rules.normalize(strip_math_delimiters(job.gold)))
    answer_text, answer_unit = (None, None)
    if job.answer is not None:
        answer_text, answer_unit = math_rules.unit_of(math_rules.normalize(strip_math_delimiters(job.answer)))
    clash = gold_unit and answer_unit and gold_unit != answer_unit
    units = f"answer {(job.answer or '')[:80]} is in {answer_unit}, the reference in {gold_unit}"
    gold_integer = math_rules.plain_integer(gold_text)
    if gold_integer is not None and answer_text is not None:
        if clash:
            return VerifyStatus.WRONG.value, units
        answer_integer = math_rules.plain_integer(answer_text)
        if answer_integer is not None:  # exact, any length, no parser needed
            if answer_integer == gold_integer:
                return VerifyStatus.OK.value, ""
            return VerifyStatus.WRONG.value, f"answer {job.answer[:80]} is not equal to the reference"
    try:
        gold = _parse(gold_text, s.parsing_timeout_s)
    except TimeoutException:
        return VerifyStatus.UNPARSEABLE_GOLD.value, f"parsing the gold answer {job.gold[:80]!r} timed out"
    except MemoryError:
        raise
    except Exception as error:
        gold, reason = [], f"{type(error).__name__}: {error}"[:200]
    else:
        reason = "no expression math-verify can compare"
    if not any(isinstance(g, (Basic, MatrixBase)) for g in gold):
        return VerifyStatus.UNPARSEABLE_GOLD.value, f"gold answer {job.gold[:80]!r}: {reason}"
    if job.answer is None:
        return VerifyStatus.NO_ANSWER.value, "no \\boxed{} answer (and no fallback matched)"
    if clash:
        return VerifyStatus.WRONG.value, units
    try:
        pred = _parse(answer_text, s.parsing_timeout_s)
    except TimeoutException:
        return VerifyStatus.TIMEOUT.value, f"parsing the answer {job.answer[:80]!r} timed out"
    except MemoryError:
        raise
    except Exception:
        pred = []
    if not pred:
        return VerifyStatus.MALFORMED.value, f"answer {job.answer[:80]!r} is not a readable expression"
    # verify() only compares str with str and sympy with sympy; the cheap string pairs go first.
    pairs = [(g, p) for g in gold for p in pred if isinstance(g, str) and isinstance(p, str)]
    pairs += [(g, p) for g in gold for p in pred if not isinstance(g, str) and not isinstance(p, str)]
    for g, p in pairs:
        try:
            if verify(
                g,
                p,
                float_rounding=s.float_rounding,
                numeric_precision=s.numeric_precision,
                strict=s.strict,
                timeout_seconds=s.compare_timeout_s,
                raise_on_error=True,
            ):
                decimal = math_rules.decimal_value(answer_text)
                why = math_rules.decimal_mismatch(g, decimal, gold_text) if decimal is not None else None
                if why is None:
                    return VerifyStatus.OK.value, ""
                return VerifyStatus.WRONG.value, f"answer {job.answer[:80]}: {why}"
        except TimeoutException:
            # the other parses of the same answer would time out as well: stop here
            return VerifyStatus.TIMEOUT.value, f"comparing {job.answer[:80]!r} with the gold answer timed out"
        except MemoryError:
            raise
        except Exception:
            continue  # this pair is not comparable; math-verify's own verify() does the same
    return VerifyStatus.WRONG.value, f"answer {job.answer[:80]} is not equal to the reference"


def _result(outcome: Outcome) -> VerifierResult:
    if outcome.failure is None:
        status, feedback = outcome.value
        status = VerifyStatus(status)
        return VerifierResult(status == VerifyStatus.OK, float(status == VerifyStatus.OK), status, feedback)
    if outcome.failure == "timeout":
        return VerifierResult(False, 0.0, VerifyStatus.TIMEOUT, f"verifier {outcome.detail}")
    return VerifierResult(False, 0.0, VerifyStatus.ERROR, f"verifier {outcome.failure}: {outcome.detail}")


class MathVerifier:
    """Batch verifier (the ``Verifier`` protocol) for free-form math answers.

    Worker processes start on the first call (nothing is spawned at construction, so the
    object can be built by Hydra, pickled and copied freely); ``close()`` stops them.
    """

    def __init__(
        self,
        fallbacks: Sequence[str] = ("gsm8k", "answer_is"),
        num_workers: int = 2,
        deadline_s: float = 15.0,
        parsing_timeout_s: int = 2,
        compare_timeout_s: int = 2,
        worker_memory_mb: int | None = 2048,
        float_rounding: int = 6,
        numeric_precision: int = 15,
        strict: bool = True,
        start_method: str = "forkserver",
    ) -> None:
        self.fallback_names = tuple(str(f) for f in fallbacks)
        compile_fallbacks(self.fallback_names)  # fail at construction on a bad name or regex
        for key, value in (("parsing_timeout_s", parsing_timeout_s), ("compare_timeout_s", compare_timeout_s)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"verifier.{key} must be a whole number of seconds >= 1 (signal.alarm), got {value!r}")
        # gold parse + answer parse + one comparison must fit, or healthy items get killed
        if deadline_s < 2 * parsing_timeout_s + compare_timeout_s + 1:
            raise ValueError(
                f"verifier.deadline_s={deadline_s} must be >= 2 * parsing_timeout_s + compare_timeout_s + 1 "
                f"= {2 * parsing_timeout_s + compare_timeout_s + 1}"
            )
        if worker_memory_mb is not None and worker_memory_mb < 256:
            raise ValueError(f"verifier.worker_memory_mb must be null or >= 256, got {worker_memory_mb}")
        self.settings = MathSettings(parsing_timeout_s, compare_timeout_s, float_rounding, numeric_precision, strict)
        self.pool = WorkerPool(num_workers, deadline_s, init_worker, (worker_memory_mb,), start_method)
        self.check = check_job  # the function the workers run (a test may swap it)

    def __call__(self, completions: list[str], references: list[str]) -> list[VerifierResult]:
        if len(completions) != len(references):
            raise ValueError(f"{len(completions)} completions but {len(references)} references")
        fallbacks = compile_fallbacks(self.fallback_names)
        jobs = [MathJob(ref, extract_answer(c, fallbacks), self.settings) for c, ref in zip(completions, references)]
        if not jobs:
            return []
        return [_result(o) for o in self.pool.map(self.check, jobs)]

    def close(self) -> None:
        self.pool.close()
