"""The trusted programs that grade a solution inside sandboxes (stdlib only; sent as source text).

Two ways, by task kind (see `benchmarks.harness.grade`):

- `check` tasks (HumanEval, EvalPlus): two sandboxes that cannot see each other. The *candidate*
  sandbox holds only solution.py and runs `serve`: it imports the solution and answers calls
  (`entry_point(*args)`) over a pipe. The *judge* sandbox runs `judge`: it executes the task's
  prompt (its helpers, e.g. `poly`) and hidden `check` with a proxy as `candidate`, so every
  comparison happens in a process the solution's code never runs in. Only plain data crosses
  (None, bool, int, float, complex, str, bytes, list, tuple, dict, set, frozenset of exactly those
  types; numpy scalars become Python ones): an object with its own `__eq__` cannot arrive.
- `unittest` tasks (DataFrameBench, whose tests inspect live DataFrames and matplotlib Axes): one
  sandbox runs `run_unittest`, which loads the solution into its own namespace and the tests into
  another, wraps the entry point so that a value of a type the solution created fails, counts that
  every test ran and succeeded (a skip is a failure), refuses -O, and checks afterwards that no
  attribute of a module or class imported before the solution was changed; an audit hook refuses
  gc and ctypes introspection, tracing, and changing classes of those modules while the tests run.
  The process is made non-dumpable (no /proc/self/mem, no ptrace by its children). Not airtight:
  code in the tests' process that walks the interpreter's frames could still reach and mutate the
  runner's live objects (its test result, say), or write interpreter memory through ctypes; the
  checks above stop every generic trick in `benchmarks.cheats` but not a cheat written against
  this runner. `check` tasks have no such gap: nothing of the judge is in the solution's process.

Either way the verdict is one line, `JUNE-VERDICT <nonce> passed`, written to a pipe the runner was
given, after every check ran; exit status and output are not the verdict. The nonce is a per-run
random value. The judge of `check` tasks reads it with the task on stdin (no solution code ever
runs there). The unittest runner reads it from its own pipe before any solution code exists and
moves it into the kernel keyring (`_Keyring`), so nothing in the process's memory, frames or fds
holds it while the solution runs.
"""

from __future__ import annotations

import json
import math
import os
import sys

VERDICT = "JUNE-VERDICT"
MAX_MESSAGE = 64 << 20
"""Largest encoded call or result, bytes."""
MAX_DEPTH = 200
"""Deepest nesting of an encoded value."""


class WireError(TypeError):
    """A value that may not cross between the candidate and the judge."""


def encode(value: object, depth: int = 0) -> object:
    """`value` as JSON-able tagged data; raises WireError for anything but plain built-in data."""
    if depth > MAX_DEPTH:
        raise WireError("value nested too deeply")
    kind = type(value)
    if value is None:
        return ["n"]
    if kind is bool:
        return ["b", value]
    if kind is int:
        return ["i", str(value)]
    if kind is float:
        return ["f", value.hex() if math.isfinite(value) else repr(value)]
    if kind is complex:
        return ["c", encode(value.real)[1], encode(value.imag)[1]]
    if kind is str:
        return ["s", value]
    if kind in (bytes, bytearray):
        return ["y" if kind is bytes else "Y", value.hex()]
    if kind in (list, tuple, set, frozenset):
        tag = {list: "l", tuple: "t", set: "S", frozenset: "F"}[kind]
        return [tag, [encode(v, depth + 1) for v in value]]
    if kind is dict:
        return ["d", [[encode(k, depth + 1), encode(v, depth + 1)] for k, v in value.items()]]
    module = getattr(kind, "__module__", "")
    if module == "numpy" and hasattr(value, "item") and not hasattr(value, "shape") or module == "numpy" and getattr(value, "shape", None) == ():
        return encode(value.item(), depth)  # type: ignore[attr-defined]
    raise WireError(f"a value of type {module}.{kind.__qualname__} cannot be compared by the grader (plain data only)")


def _float(text: str) -> float:
    return float(text) if text in ("nan", "inf", "-inf") else float.fromhex(text)


def decode(data: object, depth: int = 0) -> object:
    """The value `encode` made; raises WireError for anything malformed."""
    if depth > MAX_DEPTH or not isinstance(data, list) or not data or not isinstance(data[0], str):
        raise WireError("malformed value")
    tag, rest = data[0], data[1:]
    try:
        if tag == "n":
            return None
        if tag == "b" and type(rest[0]) is bool:
            return rest[0]
        if tag == "i" and type(rest[0]) is str:
            return int(rest[0])
        if tag == "f":
            return _float(rest[0])
        if tag == "c":
            return complex(_float(rest[0]), _float(rest[1]))
        if tag == "s" and type(rest[0]) is str:
            return rest[0]
        if tag in ("y", "Y"):
            return (bytes if tag == "y" else bytearray)(bytes.fromhex(rest[0]))
        if tag in ("l", "t", "S", "F") and type(rest[0]) is list:
            items = [decode(v, depth + 1) for v in rest[0]]
            return {"l": list, "t": tuple, "S": set, "F": frozenset}[tag](items)
        if tag == "d" and type(rest[0]) is list:
            return {decode(k, depth + 1): decode(v, depth + 1) for k, v in rest[0]}
    except (IndexError, ValueError, TypeError) as e:
        raise WireError(f"malformed value: {e}") from None
    raise WireError(f"malformed value tag {tag!r}")


def _send(stream, message: dict) -> None:  # type: ignore[no-untyped-def]
    stream.write(json.dumps(message).encode() + b"\n")
    stream.flush()


def _receive(stream) -> dict:  # type: ignore[no-untyped-def]
    line = stream.readline(MAX_MESSAGE)
    if not line:
        raise EOFError("the solution's process ended")
    if not line.endswith(b"\n"):
        raise WireError("message too large")
    message = json.loads(line)
    if not isinstance(message, dict):
        raise WireError("malformed message")
    return message


def _load_solution(path: str, name: str) -> dict:
    namespace: dict = {"__name__": name, "__file__": path, "__builtins__": __builtins__}
    with open(path, encoding="utf-8", errors="surrogateescape") as f:
        source = f.read()
    exec(compile(source, path, "exec"), namespace)
    return namespace


def serve(entry_point: str, path: str = "/tmp/task/solution.py") -> None:
    """The candidate sandbox: answer `{"args", "kwargs"}` calls on stdin with `{"ok"}` or `{"raise"}` on stdout."""
    wire_in = os.fdopen(os.dup(0), "rb")
    wire_out = os.fdopen(os.dup(1), "wb")
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.dup2(2, 1)  # the solution's prints go to the log, not into the wire
    sys.stdin = open(os.devnull)
    sys.stdout = sys.stderr
    function = _load_solution(path, "solution")[entry_point]
    while True:
        try:
            request = _receive(wire_in)
        except EOFError:
            return
        try:
            args = decode(request["args"])
            kwargs = decode(request["kwargs"])
            value = function(*args, **kwargs)  # type: ignore[misc]
            reply = {"ok": encode(value)}
        except Exception as e:
            reply = {"raise": type(e).__name__, "message": str(e)[:2000]}
        _send(wire_out, reply)


class Candidate:
    """The judge's stand-in for the solution's function: each call goes over the wire."""

    def __init__(self, name: str, wire_out, wire_in) -> None:  # type: ignore[no-untyped-def]
        self.__name__ = self.__qualname__ = name
        self._out, self._in = wire_out, wire_in

    def __call__(self, *args: object, **kwargs: object) -> object:
        _send(self._out, {"args": encode(list(args)), "kwargs": encode(dict(kwargs))})
        reply = _receive(self._in)
        if "ok" in reply:
            return decode(reply["ok"])
        import builtins

        name = str(reply.get("raise", "Exception"))
        error = getattr(builtins, name, None)
        if not (isinstance(error, type) and issubclass(error, Exception)):
            error = RuntimeError
        raise error(f"{name} in the solution: {reply.get('message', '')}")


def _verdict(fd: int, nonce: str) -> None:
    os.write(fd, f"{VERDICT} {nonce} passed\n".encode())
    os.close(fd)


def judge(blob: dict) -> None:
    """The judge sandbox: the prompt's helpers and `check(candidate)`, then the verdict."""
    if sys.flags.optimize:
        raise SystemExit("refusing to judge under -O: asserts would be stripped")
    wire_out = os.fdopen(blob["to_candidate_fd"], "wb")
    wire_in = os.fdopen(blob["from_candidate_fd"], "rb")
    namespace: dict = {"__name__": "__judge__"}
    exec(compile(blob["prompt"], "prompt", "exec"), namespace)
    candidate = Candidate(blob["entry_point"], wire_out, wire_in)
    namespace[blob["entry_point"]] = candidate
    exec(compile(blob["test"], "test", "exec"), namespace)
    namespace["check"](candidate)
    _verdict(blob["verdict_fd"], blob["nonce"])


# --- unittest tasks: the tests in the solution's process ------------------------------------------

_REFUSED = ("gc.get_objects", "gc.get_referrers", "gc.get_referents", "sys._current_frames", "sys.settrace",
            "sys.setprofile", "sys.addaudithook", "cpython.PyInterpreterState_Clear", "cpython._PySys_ClearAuditHooks")


def _code(attrs: dict) -> dict:
    """The attributes that are code (functions, classes, modules, descriptors), not data or caches."""
    import types

    kinds = (type, types.ModuleType, types.FunctionType, types.BuiltinFunctionType, types.MethodType, staticmethod,
             classmethod, property)
    return {k: v for k, v in list(attrs.items()) if isinstance(v, kinds)}


def _snapshot() -> dict:
    """Every code attribute of every module imported so far, and of every class defined in them."""
    seen: dict = {}
    for name, module in list(sys.modules.items()):
        attrs = getattr(module, "__dict__", None)
        if not isinstance(attrs, dict):
            continue
        seen[name] = (module, _code(attrs))
        for value in list(attrs.values()):
            if isinstance(value, type) and value.__module__ == name:
                seen[f"{name}:{value.__qualname__}"] = (value, _code(dict(vars(value))))
    return seen


def _changed(before: dict, after: dict) -> list[str]:
    changed = []
    for key, (obj, attrs) in before.items():
        now = after.get(key)
        if now is None or now[0] is not obj:
            changed.append(key)
        else:
            changed += [f"{key}.{k}" for k, v in attrs.items() if now[1].get(k) is not v]
    return changed


def run_unittest(blob: dict) -> None:
    """One unittest task in this process; the verdict only if every test ran and passed, untampered."""
    if sys.flags.optimize:
        raise SystemExit("refusing to run tests under -O: asserts would be stripped")
    import ctypes
    import unittest

    keep = _Keyring(blob.pop("nonce_fd"))  # the nonce leaves this process's memory before the solution exists
    verdict_fd = blob.pop("verdict_fd")
    for name in blob.get("preload", []):
        try:
            __import__(name)
        except Exception:  # noqa: BLE001 - a missing library shows in the tests
            pass
    if "matplotlib" in sys.modules:
        try:
            import matplotlib.pyplot  # noqa: F401 - before the snapshot: tests use it
        except Exception:  # noqa: BLE001
            pass
    ctypes.CDLL(None).prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE 0: no /proc/self/mem, no ptrace by peers
    test_case, test_suite, test_loader, test_result = unittest.TestCase, unittest.TestSuite, unittest.TestLoader, unittest.TestResult
    known_types = frozenset(_all_types())
    # Everything used after the solution loads is bound here, so rebinding the runner's globals
    # (reachable through frames) changes nothing.
    changed_since, snapshot, check_types, verdict = _changed, _snapshot, _check_types, _verdict
    before = _snapshot()
    protected = {id(obj) for obj, attrs in before.values() for obj in (obj, *attrs.values())}
    armed = [True]

    def hook(event: str, args: tuple) -> None:
        if not armed[0]:
            return
        if event in _REFUSED or event.startswith("ctypes."):
            raise RuntimeError(f"{event} is not allowed while the tests run")
        if event in ("object.__setattr__", "object.__delattr__") and args and id(args[0]) in protected:
            raise RuntimeError(f"changing {getattr(args[0], '__qualname__', type(args[0]).__name__)} is not allowed")
        if event == "open" and args and isinstance(args[0], (str, bytes)) and str(args[0]).startswith("/proc"):
            raise RuntimeError("reading /proc is not allowed while the tests run")

    sys.addaudithook(hook)
    del ctypes

    def typed(function):  # type: ignore[no-untyped-def]
        def wrapper(*args, **kwargs):  # type: ignore[no-untyped-def]
            value = function(*args, **kwargs)
            check_types(value, known_types, 0)
            return value

        return wrapper

    solution = _load_solution("/tmp/task/solution.py", "solution")
    tests = dict(solution)
    tests["__name__"] = "__tests__"
    tests[blob["entry_point"]] = typed(solution[blob["entry_point"]])
    exec(compile(blob["test"], "tests", "exec"), tests)
    cases = [v for v in tests.values() if isinstance(v, type) and issubclass(v, test_case) and v.__module__ == "__tests__"]
    suite = test_suite()
    for case in cases:
        suite.addTests(test_loader().loadTestsFromTestCase(case))
    expected = suite.countTestCases()

    class Result(test_result):
        passed = 0

        def addSuccess(self, test):  # type: ignore[no-untyped-def]
            super().addSuccess(test)
            Result.passed += 1

    result = Result()
    suite.run(result)
    armed[0] = False
    lists = (result.failures, result.errors, result.skipped, result.expectedFailures, result.unexpectedSuccesses)
    if any(type(v) is not list for v in lists) or type(result.testsRun) is not int:
        print("the solution replaced the test result's records", file=sys.stderr)
        return
    problems = [f"{test}: {text}" for test, text in result.failures + result.errors]
    problems += [f"{test}: skipped ({why})" for test, why in result.skipped]
    if result.expectedFailures or result.unexpectedSuccesses:
        problems.append("expected failures are not passes")
    if expected == 0 or result.testsRun != expected or Result.passed != expected:
        problems.append(f"{Result.passed} of {expected} tests passed ({result.testsRun} ran)")
    if changed := changed_since(before, snapshot()):
        problems.append(f"the solution changed {', '.join(changed[:5])}")
    if problems:
        print("\n".join(problems)[-20000:], file=sys.stderr)
        return
    verdict(verdict_fd, keep.take())


class _Keyring:
    """Holds the nonce in the kernel (a `user` key in this process's keyring), not in memory the
    solution could scan: reading it back needs a syscall through ctypes, which the audit hook refuses
    while the tests run, and a child process does not possess the key. Where keys are not available
    (a seccomp filter), the nonce stays in this object: weaker.

    Not airtight: code that writes interpreter memory through ctypes (numpy carries a reference to
    it) could disable the audit hook first. Tests in the solution's process cannot be made safe
    against that; `check` tasks are graded out of process for this reason."""

    _CALLS = {"x86_64": (248, 250), "aarch64": (217, 219)}

    def __init__(self, fd: int) -> None:
        import ctypes
        import platform

        libc = ctypes.CDLL(None)  # not kept: no resolved `syscall` is left for the solution to call
        libc.syscall.restype = ctypes.c_long
        buffer = ctypes.create_string_buffer(128)
        size = os.readv(fd, [buffer])
        os.close(fd)
        self._size = size
        self._fallback = b""
        add_key, self._keyctl = self._CALLS.get(platform.machine(), (None, None))
        key = -1
        if add_key is not None:
            key = libc.syscall(add_key, b"user", b"june-nonce", buffer, ctypes.c_size_t(size), ctypes.c_int(-2))
        if key < 0:
            self._fallback = bytes(buffer.raw[:size])
        self._key = key
        ctypes.memset(buffer, 0, 128)

    def take(self) -> str:
        import ctypes

        if self._key < 0:
            return self._fallback.decode()
        libc = ctypes.CDLL(None)  # resolved only now, after the audit hook was disarmed
        libc.syscall.restype = ctypes.c_long
        buffer = ctypes.create_string_buffer(128)
        size = libc.syscall(self._keyctl, 11, self._key, buffer, 128)  # KEYCTL_READ
        return buffer.raw[:size].decode() if size > 0 else ""


def _all_types() -> set[int]:
    """Ids of every class that exists now (walking `object.__subclasses__`)."""
    seen: set[int] = {id(object), id(type)}
    todo: list[type] = [object]
    while todo:
        cls = todo.pop()
        try:
            subclasses = type.__subclasses__(cls)
        except TypeError:
            continue
        for sub in subclasses:
            if id(sub) not in seen:
                seen.add(id(sub))
                todo.append(sub)
    return seen


def _check_types(value: object, known: set, depth: int) -> None:
    """Refuse a returned value (or a value in a returned list/tuple/dict/set) of a class created after
    the libraries were loaded, i.e. by the solution: its `__eq__` could say anything."""
    if id(type(value)) not in known:
        raise TypeError(f"the solution returned a {type(value).__qualname__}, a type it defined itself")
    attrs = getattr(value, "__dict__", None)
    if isinstance(attrs, dict):  # `df.equals = lambda *a: True` on a real DataFrame
        for name, attr in list(attrs.items())[:500]:
            if callable(attr) and callable(getattr(type(value), name, None)) and id(type(attr)) not in known:
                raise TypeError(f"the solution replaced the method {name} of the {type(value).__qualname__} it returned")
            if type(attr).__name__ == "function" and getattr(attr, "__module__", None) == "solution":
                raise TypeError(f"the solution attached its own {name} to the {type(value).__qualname__} it returned")
    if depth < 3 and type(value) in (list, tuple, set, frozenset):
        for item in list(value)[:1000]:  # type: ignore[call-overload]
            _check_types(item, known, depth + 1)
    elif depth < 3 and type(value) is dict:
        for key, item in list(value.items())[:1000]:  # type: ignore[attr-defined]
            _check_types(key, known, depth + 1)
            _check_types(item, known, depth + 1)


BOOT = """import sys, json
blob = json.loads(sys.stdin.buffer.read())
sys.stdin.close()
scope = {"__name__": "__runner__"}
exec(compile(blob.pop("source"), "judge.py", "exec"), scope)
scope[blob.pop("mode")](blob)
"""
"""`python -I -c BOOT` reads this file's source, the mode and the task from stdin (then closed) and runs it."""
