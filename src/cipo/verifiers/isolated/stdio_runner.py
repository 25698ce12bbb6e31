"""Run by a fresh ``python -I -c <this source> <program file>`` per stdin/stdout test, as the
sample's uid (standard library only). Runs the program as ``__main__`` on the real stdin and
stdout. Descriptor 3 takes at most a line about how the program failed; the judge believes only
failures from it (a program that writes "passed" there gains nothing: outputs are compared by
the trainer)."""

import json
import os
import signal
import sys
import traceback


class _OutOfCpuTime(BaseException):
    pass


def _on_cpu_limit(signum, frame):
    raise _OutOfCpuTime()


def _report(status, error):
    try:
        os.write(3, (json.dumps({"status": status, "error": error[:2000]}) + "\n").encode())
    except Exception:
        pass


def _run(path):
    with open(path, encoding="utf-8", errors="surrogatepass") as handle:
        source = handle.read()
    try:
        code = compile(source, "solution.py", "exec")
    except (SyntaxError, ValueError, RecursionError, MemoryError) as error:
        _report("syntax_error", "".join(traceback.format_exception_only(type(error), error)).strip())
        return 1
    sys.argv = ["solution.py"]
    signal.signal(signal.SIGXCPU, _on_cpu_limit)
    namespace = {"__name__": "__main__", "__file__": "solution.py", "__builtins__": __builtins__}
    exit_code = 0
    try:
        exec(code, namespace)
    except SystemExit as error:  # a normal way for a script to end
        exit_code = error.code if isinstance(error.code, int) else (0 if error.code is None else 1)
        if exit_code:
            _report("runtime_error", f"exit code {exit_code}")
    except BaseException as error:
        if isinstance(error, _OutOfCpuTime):
            _report("timeout", "the program used up its CPU time")
        else:
            status = "memory_exceeded" if isinstance(error, MemoryError) else "runtime_error"
            frames = [f for f in traceback.extract_tb(error.__traceback__) if f.filename == "solution.py"][::-1][:3]
            head = "".join(traceback.format_exception_only(type(error), error)).strip()
            where = [f"  at solution.py:{f.lineno} in {f.name}: {(f.line or '').strip()}" for f in frames]
            _report(status, "\n".join([head, *where]))
            traceback.print_exc()
        exit_code = 1
    try:
        sys.stdout.flush()
    except OSError as error:  # e.g. the output limit (RLIMIT_FSIZE)
        _report("runtime_error", f"writing the output failed: {error}")
        exit_code = 1
    return exit_code


os._exit(_run(sys.argv[1]))
