"""Runs inside the sandbox process (``python -I harness.py '<json config>'``); stdlib only.

Started by ``sandbox.py`` as root inside fresh namespaces (or as the user, see there). Order:
read the program (and tests) while still privileged, set the resource limits, drop to the
sandbox uid, then compile and run the untrusted code in this same interpreter.

Reports go to an inherited file descriptor (``result_fd``), one line each:
``<nonce> <json>``. In ``function`` mode the nonce arrives as the first line of stdin (read
before any untrusted code runs; stdin is then /dev/null), and a sample only counts as passed
if the parent sees ``{"done": true}`` with the nonce: ``sys.exit(0)`` or ``os._exit(0)`` before or
during the tests leaves no such line. Records from a forked copy of this process are refused.

``function`` mode: run the program (``__name__ == "__solution__"``), then the test code in the
same namespace, then every top-level statement of ``check(candidate)`` in order with its own
alarm; statements that contain an ``assert`` are the tests (so a score is the fraction of them
that passed), the others are setup. No ``check`` statements with asserts -> one test,
``check(candidate)``. ``stdio`` mode: run the program as ``__main__`` on the real stdin/stdout.
"""

import ast
import json
import os
import resource
import signal
import sys
import traceback

_LIMITS = {
    "memory_bytes": "RLIMIT_AS",
    "cpu_s": "RLIMIT_CPU",
    "file_bytes": "RLIMIT_FSIZE",
    "processes": "RLIMIT_NPROC",
}


class _TestTimeout(BaseException):
    """Raised by the per-test alarm; a BaseException so ``except Exception`` in user code misses it."""


class _Reporter:
    def __init__(self, fd: int, nonce: str) -> None:
        self.out = os.fdopen(fd, "w", buffering=1, encoding="utf-8")
        self.nonce, self.pid = nonce, os.getpid()

    def __call__(self, **record) -> None:
        if os.getpid() != self.pid:  # a fork of the untrusted code reached the harness: stop it
            os._exit(1)
        self.out.write(f"{self.nonce} {json.dumps(record)}\n")
        self.out.flush()


def _limit_and_drop(config: dict) -> None:
    for key, name in _LIMITS.items():
        value = config["limits"].get(key)
        if value is not None and hasattr(resource, name):
            # CPU: SIGXCPU at the soft limit (handled below), SIGKILL a second later
            hard = value + 1 if key == "cpu_s" else value
            resource.setrlimit(getattr(resource, name), (value, hard))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    if config.get("uid") is not None:
        os.setgroups([])
        os.setgid(config["gid"])
        os.setuid(config["uid"])
    os.umask(0o077)


def _describe(error: BaseException, limit: int = 3) -> tuple[str, str]:
    """(status, short text) for an exception raised by untrusted code."""
    if isinstance(error, _TestTimeout):
        return "timeout", "the test ran past its time limit"
    if isinstance(error, MemoryError):
        return "memory_exceeded", "MemoryError: the memory limit was reached"
    if isinstance(error, SystemExit):
        return "runtime_error", f"SystemExit({error.code!r}) raised by the program"
    described = traceback.TracebackException.from_exception(error)
    head = "".join(described.format_exception_only()).strip()
    # innermost frames first, and not the harness's own: the first lines are the useful ones
    frames = [f for f in described.stack if f.filename != __file__][::-1][:limit]
    where = [f"  at {f.filename}:{f.lineno} in {f.name}: {(f.line or '').strip()}" for f in frames]
    return "runtime_error", "\n".join([head, *where])


def _check_statements(test_source: str) -> tuple[str, list[tuple[str, object, bool]]] | None:
    """(argument name, [(source, code, is_test)]) of ``check``'s body; None if not splittable."""
    tree = ast.parse(test_source)
    checks = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "check" and n.args.args]
    if not checks:
        return None
    check = checks[-1]
    statements = []
    for stmt in check.body:
        is_test = any(isinstance(node, ast.Assert) for node in ast.walk(stmt))
        source = ast.get_source_segment(test_source, stmt) or ast.unparse(stmt)
        statements.append((source, compile(ast.Module([stmt], []), "test.py", "exec"), is_test))
    if not any(is_test for _, _, is_test in statements):
        return None
    return check.args.args[0].arg, statements


def _run_statement(code, namespace: dict, timeout_s: float) -> BaseException | None:
    signal.setitimer(signal.ITIMER_REAL, timeout_s)
    try:
        exec(code, namespace)
        return None
    except BaseException as error:  # untrusted code: anything may come out
        return error
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)


def _function_mode(config: dict, program, test_source: str, report: _Reporter) -> None:
    namespace = {"__name__": "__solution__", "__builtins__": __builtins__}
    error = _run_statement(program, namespace, config["test_timeout_s"])
    if error is not None:
        status, text = _describe(error)
        report(status=status, error=f"while running the program: {text}")
        return
    try:  # the reference's own code: a failure here is not the program's fault
        exec(compile(test_source, "test.py", "exec"), namespace)
        split = _check_statements(test_source)
    except Exception as error:
        report(status="error", error=f"the reference test code failed: {type(error).__name__}: {error}")
        return
    candidate = namespace.get(config["entry_point"])
    if not callable(candidate):
        report(status="runtime_error", error=f"the program does not define {config['entry_point']}()")
        return
    if split is None:
        arg, statements = "candidate", [("check(candidate)", compile("check(candidate)", "test.py", "exec"), True)]
    else:
        arg, statements = split
    scope = dict(namespace)
    scope[arg] = candidate
    total = sum(is_test for _, _, is_test in statements)
    report(total=total)
    index = 0
    for source, code, is_test in statements:
        error = _run_statement(code, scope, config["test_timeout_s"])
        if not is_test:
            if error is not None:
                status, text = _describe(error)
                report(setup=source[:300], status=status, error=f"{text}\nin test: {source[:300]}")
            continue
        if error is None:
            report(test=index, status="passed")
        elif isinstance(error, AssertionError):
            message = f"failed: {source[:300]}" + (f"\nAssertionError: {error}" if str(error) else "")
            report(test=index, status="failed", error=message)
        else:
            status, text = _describe(error)
            report(test=index, status=status, error=f"{text}\nin test: {source[:300]}")
        index += 1
    report(done=True)


def _stdio_mode(program, report: _Reporter) -> None:
    namespace = {"__name__": "__main__", "__file__": "solution.py", "__builtins__": __builtins__}
    code = 0
    try:
        exec(program, namespace)
    except SystemExit as error:  # a normal way for a script to end
        code = error.code if isinstance(error.code, int) else (0 if error.code is None else 1)
        if code:
            report(status="runtime_error", error=f"exit code {code}")
    except BaseException as error:
        status, text = _describe(error)
        report(status=status, error=text)
        traceback.print_exc()
        code = 1
    try:
        sys.stdout.flush()
    except OSError as error:  # e.g. the output limit (RLIMIT_FSIZE)
        report(status="runtime_error", error=f"writing the output failed: {error}")
        code = 1
    os._exit(code)


def main() -> None:
    config = json.loads(sys.argv[1])
    nonce = ""
    if config["mode"] == "function":
        nonce = sys.stdin.readline().strip()
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.close(devnull)
    with open(config["program"], encoding="utf-8") as f:
        source = f.read()
    test_source = ""
    if config.get("test"):
        with open(config["test"], encoding="utf-8") as f:
            test_source = f.read()
    report = _Reporter(config["result_fd"], nonce)
    _limit_and_drop(config)
    signal.signal(signal.SIGALRM, _raise_timeout)
    signal.signal(signal.SIGXCPU, _raise_timeout)
    try:
        program = compile(source, "solution.py", "exec")
    except (SyntaxError, ValueError, RecursionError, MemoryError) as error:
        report(status="syntax_error", error="".join(traceback.format_exception_only(type(error), error)).strip())
        os._exit(0)
    if config["mode"] == "function":
        _function_mode(config, program, test_source, report)
        os._exit(0)  # skip the untrusted code's atexit handlers and threads
    _stdio_mode(program, report)


def _raise_timeout(signum, frame) -> None:
    raise _TestTimeout()


if __name__ == "__main__":
    main()
