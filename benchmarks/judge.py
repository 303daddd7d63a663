"""The trusted programs that grade a solution inside sandboxes (stdlib only; sent as source text).

Every task is graded in two sandboxes that cannot see each other's processes (see
`benchmarks.grading.grade`). The *candidate* sandbox holds solution.py and runs `serve`: it imports
the solution and answers calls (`entry_point(*args)`) over a pipe. The *judge* sandbox runs the
hidden tests with a `Candidate` proxy as the entry point, so every comparison happens in a process
the solution's code never runs in, and the verdict is written there:

- `check` tasks (HumanEval, EvalPlus), `judge`: the task's prompt (its helpers, e.g. `poly`) and
  hidden `check(candidate)`. Only plain data crosses (None, bool, int, float, complex, str, bytes,
  list, tuple, dict, set, frozenset of exactly those types; numpy scalars become Python ones): an
  object with its own `__eq__` cannot arrive.
- `unittest` tasks (DataFrameBench), `judge_unittest`: the task's own imports (its starter), then its
  unittest classes; every test must run and pass (a skip is a failure). Values cross as
  `benchmarks.replica` describes them: the judge rebuilds genuine DataFrames, arrays, Axes and
  Figures with the libraries' constructors, so a type or method of the solution's never arrives.
  Each call carries the judge's random states (`random`, numpy's global RandomState) in and the
  solution's back out, and which of the solution's figures the tests have closed, so tests that seed
  or close plots behave as in one process. The two sandboxes share /tmp and the task dir (tests write
  files the solution reads); the judge keeps its configuration in its private /dev/shm. Not ruled
  out: a solution that leaves a process running can rewrite, between two calls, a file a test wrote
  there and reads back later, as it could when the tests ran in its process; and it sets the random
  states the tests see after a call, as any solution drawing from them does.

A call whose answer cannot be decoded (the solution died, hung up, sent garbage or something that
cannot cross) raises `Unjudgeable`, a BaseException: no `assertRaises` or `except Exception` in the
tests takes it for an error the solution raised.

`run_unittest` is the old way, kept for the DataFrameBench tasks whose tests patch (`unittest.mock`)
what the solution calls (`benchmarks.datasets.IN_PROCESS`): the tests run in the solution's
process, with checks against generic tricks (tampered modules and classes, skips, solution-made
return types, gc/ctypes introspection) but not against a cheat written against this runner (walking
frames to its nonce, say). Those tasks' results say `grading: in-process`: not adversarially robust.

Either way the verdict is one line, `JUNE-VERDICT <nonce> passed`, written to a pipe the runner was
given, after every check ran; exit status and output are not the verdict. The nonce is a per-run
random value the judge reads with the task on stdin (in the isolated modes, no solution code ever
runs in that process).
"""

from __future__ import annotations

import json
import math
import os
import sys
from typing import Any

VERDICT = "JUNE-VERDICT"
MAX_MESSAGE = 64 << 20
"""Largest encoded call or result, bytes (plain data: HumanEval, EvalPlus)."""
MAX_RICH_MESSAGE = 256 << 20
"""The same for DataFrameBench (a month of log records with their timestamps is 60 MiB)."""
MAX_DEPTH = 200
"""Deepest nesting of an encoded value."""


class WireError(TypeError):
    """A value that may not cross between the candidate and the judge."""


def encode(value: Any, depth: int = 0, rich: Any = None) -> list[Any]:
    """`value` as JSON-able tagged data. Raises WireError for anything but plain built-in data (numpy
    scalars become Python ones), unless `rich` (the `benchmarks.replica` module, DataFrameBench) is
    given: then numpy, pandas, matplotlib and seaborn values are described by it, numpy scalars kept."""
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
        tags: dict[type, str] = {list: "l", tuple: "t", set: "S", frozenset: "F"}
        tag = tags[kind]
        return [tag, [encode(v, depth + 1, rich) for v in value]]
    if kind is dict:
        return ["d", [[encode(k, depth + 1, rich), encode(v, depth + 1, rich)] for k, v in value.items()]]
    if rich is not None:
        return rich.encode(value, depth, lambda v, d: encode(v, d, rich))
    module = getattr(kind, "__module__", "")
    if (module == "numpy" and hasattr(value, "item") and not hasattr(value, "shape")) or (
        module == "numpy" and getattr(value, "shape", None) == ()
    ):
        return encode(value.item(), depth)
    raise WireError(f"a value of type {module}.{kind.__qualname__} cannot be compared by the grader (plain data only)")


def _float(text: str) -> float:
    return float(text) if text in ("nan", "inf", "-inf") else float.fromhex(text)


def decode(data: object, depth: int = 0, rich: Any = None) -> object:
    """The value `encode` made (with the same `rich`); raises WireError for anything malformed."""
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
            items = [decode(v, depth + 1, rich) for v in rest[0]]
            return {"l": list, "t": tuple, "S": set, "F": frozenset}[tag](items)
        if tag == "d" and type(rest[0]) is list:
            return {decode(k, depth + 1, rich): decode(v, depth + 1, rich) for k, v in rest[0]}
        if rich is not None and len(tag) >= 2:
            return rich.decode(data, depth, lambda v, d: decode(v, d, rich))
    except (IndexError, ValueError, TypeError) as e:
        raise WireError(f"malformed value: {e}") from None
    raise WireError(f"malformed value tag {tag!r}")


def _send(stream, message: dict) -> None:
    stream.write(json.dumps(message, separators=(",", ":")).encode() + b"\n")
    stream.flush()


def _receive(stream, limit: int = MAX_MESSAGE) -> dict:
    line = stream.readline(limit)
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


def _module(name: str, source: str) -> Any:
    """A module made from source text (how `benchmarks.replica` reaches a sandbox)."""
    import types

    module = types.ModuleType(name)
    exec(compile(source, f"{name}.py", "exec"), module.__dict__)
    return module


def _random_states(rich: Any) -> dict:
    """The global random states a DataFrameBench test seeds (`random`, numpy's legacy RandomState), encoded."""
    import random

    states: dict = {"random": encode(random.getstate(), 0, rich)}
    if "numpy" in sys.modules:
        import numpy as np

        states["numpy"] = encode(np.random.get_state(legacy=True), 0, rich)
    return states


def _set_random_states(states: dict, rich: Any) -> None:
    import random

    random.setstate(decode(states["random"], 0, rich))  # type: ignore[arg-type]
    if "numpy" in states:
        import numpy as np

        np.random.set_state(decode(states["numpy"], 0, rich))  # type: ignore[arg-type]


def serve(entry_point: str, path: str = "/tmp/task/solution.py", replica: str | None = None) -> None:
    """The candidate sandbox: answer `{"args", "kwargs"}` calls on stdin with `{"ok"}`, `{"raise"}` or
    `{"unencodable"}` on stdout. With `replica` (its source: DataFrameBench) values are described by
    `benchmarks.replica`, and each call carries the judge's random states in and the new ones back out."""
    wire_in = os.fdopen(os.dup(0), "rb")
    wire_out = os.fdopen(os.dup(1), "wb")
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.dup2(2, 1)  # the solution's prints go to the log, not into the wire
    sys.stdin = open(os.devnull)
    sys.stdout = sys.stderr
    rich: Any = None if replica is None else _module("replica", replica)
    function = _load_solution(path, "solution")[entry_point]
    while True:
        try:
            request = _receive(wire_in, MAX_MESSAGE if rich is None else MAX_RICH_MESSAGE)
        except EOFError:
            return
        reply: dict = {}
        try:
            args = decode(request["args"], 0, rich)
            kwargs = decode(request["kwargs"], 0, rich)
            if "random" in request:
                _set_random_states(request["random"], rich)
                rich.close_figures(request.get("figures"))
            value = function(*args, **kwargs)  # type: ignore[misc, arg-type]  # the wire's list and dict; else TypeError, sent back
        except Exception as e:  # noqa: BLE001  # whatever the solution raises goes back to the judge's test
            reply = {
                "raise": [[str(c.__module__), str(c.__qualname__)] for c in type(e).__mro__],
                "message": str(e)[:2000],
            }
            try:
                reply["args"] = encode(list(e.args), 0, rich)
            except Exception:  # noqa: BLE001 - the message is enough
                pass
        else:
            try:
                reply = {"ok": encode(value, 0, rich)}
            except Exception as e:  # noqa: BLE001 - not an exception of the solution's: no test may catch it
                reply = {"unencodable": f"{type(e).__name__}: {e}"[:2000]}
        if "random" in request:
            reply["random"] = _random_states(rich)
            try:  # what the call did to its arguments (`my_list.append(12)`), for the judge to apply
                reply["arguments"] = encode([args, kwargs], 0, rich)
            except Exception:  # noqa: BLE001 - unencodable now: the judge's arguments stay as they were
                pass
        _send(wire_out, reply)


class Unjudgeable(BaseException):
    """The solution's result could not cross (or came malformed): the test errs, and no `except
    Exception` or `assertRaises` in the tests can take it for an error the solution raised."""


class Candidate:
    """The judge's stand-in for the solution's function: each call goes over the wire."""

    def __init__(self, name: str, wire_out, wire_in, rich: Any = None) -> None:
        self.__name__ = self.__qualname__ = name
        self._out, self._in, self._rich = wire_out, wire_in, rich

    def __call__(self, *args: object, **kwargs: object) -> object:
        rich = self._rich
        try:  # a solution that dies, hangs up or sends garbage raises nothing a test may expect
            request: dict = {"args": encode(list(args), 0, rich), "kwargs": encode(dict(kwargs), 0, rich)}
            if rich is not None:
                request.update(random=_random_states(rich), figures=rich.open_figures())
            _send(self._out, request)
            reply = _receive(self._in, MAX_MESSAGE if rich is None else MAX_RICH_MESSAGE)
        except (OSError, EOFError, WireError, ValueError) as e:
            raise Unjudgeable(f"no answer from the solution: {type(e).__name__}: {e}") from None
        try:
            if rich is not None:
                _set_random_states(reply["random"], rich)
                rich.new_message()
                if "arguments" in reply:
                    _write_back([*args, *kwargs.values()], decode(reply["arguments"], 0, rich))
            if "ok" in reply:
                return decode(reply["ok"], 0, rich)
            if "raise" not in reply:
                raise WireError(f"the solution's result cannot cross: {str(reply.get('unencodable'))[:2000]}")
            error, error_args = _error(reply, rich)
        except Exception as e:  # noqa: BLE001 - whatever rebuilding the reply raised, the test must not catch it
            raise Unjudgeable(f"{type(e).__name__}: {e}") from None
        raise error(*error_args)


def _write_back(originals: list, arguments: object) -> None:
    """Apply to the test's own list, dict, set and bytearray arguments what the call did to them in the
    candidate (in place, as in one process). Other arguments are left as they were."""
    if (
        type(arguments) is not list
        or len(arguments) != 2
        or type(arguments[0]) is not list
        or type(arguments[1]) is not dict
    ):
        raise WireError("malformed arguments")
    # strict=False: the reply comes from the solution's side; a shorter or longer list changes no argument it lacks.
    for original, after in zip(originals, [*arguments[0], *arguments[1].values()], strict=False):
        if type(original) is not type(after) or type(original) not in (list, bytearray, dict, set):
            continue
        try:
            if original == after:
                continue
        except Exception:  # noqa: BLE001 - items without a plain truth value (arrays): compared as unchanged
            continue
        if type(original) in (list, bytearray):
            original[:] = after
        elif type(original) in (dict, set):
            original.clear()
            original.update(after)


def _error(reply: dict, rich: Any) -> tuple[type, tuple]:
    """The class of the error the solution raised and its arguments: the first class of its MRO that
    exists on this side (builtins, or a library already imported), else RuntimeError with the message."""
    import builtins

    mro = reply["raise"]
    message = str(reply.get("message", ""))
    if type(mro) is str:
        mro = [["builtins", mro]]
    for module, qualname in mro if type(mro) is list else []:
        if (
            type(module) is not str
            or type(qualname) is not str
            or not all(p.isidentifier() for p in qualname.split("."))
        ):
            continue
        found: Any = builtins if module == "builtins" else sys.modules.get(module)
        for part in qualname.split(".") if found is not None else []:
            found = getattr(found, part, None)
        if isinstance(found, type) and issubclass(found, Exception) and found.__module__ == module:
            args: tuple = (f"{mro[0][1]} in the solution: {message}",)
            if rich is not None and "args" in reply:
                decoded = decode(reply["args"], 0, rich)
                args = tuple(decoded) if type(decoded) is list else args
            try:
                found(*args)
            except Exception:  # noqa: BLE001 - a class that wants other arguments (JSONDecodeError): its base
                continue
            return found, args
    return RuntimeError, (f"{mro[0][1] if mro else 'an error'} in the solution: {message}",)


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


def judge_unittest(blob: dict) -> None:
    """The judge sandbox of a DataFrameBench task: its unittest classes, with a `Candidate` (values
    carried by `benchmarks.replica`) as the entry point, then the verdict if every test ran and passed
    (a skip, an expected failure or an unexpected success is not a pass)."""
    if sys.flags.optimize:
        raise SystemExit("refusing to judge under -O: asserts would be stripped")
    import tempfile

    # /tmp and the task dir are shared with the candidate (tests write files the solution reads): the
    # judge's configuration (matplotlib's, fontconfig's) lives in its private /dev/shm instead.
    home = tempfile.mkdtemp(dir="/dev/shm")
    os.environ.update(HOME=home, MPLCONFIGDIR=home, XDG_CONFIG_HOME=home, XDG_CACHE_HOME=home)
    import unittest

    rich = _module("replica", blob["replica"])
    for name in blob.get("preload", []):
        try:
            __import__(name)
        except Exception:  # noqa: BLE001 - a missing library shows in the tests
            pass
    wire_out = os.fdopen(blob["to_candidate_fd"], "wb")
    wire_in = os.fdopen(blob["from_candidate_fd"], "rb")
    namespace: dict = {"__name__": "__tests__"}
    exec(compile(blob["prompt"], "prompt", "exec"), namespace)  # the task's own imports (trusted)
    namespace[blob["entry_point"]] = Candidate(blob["entry_point"], wire_out, wire_in, rich)
    exec(compile(blob["test"], "tests", "exec"), namespace)
    suite = unittest.TestSuite()
    for case in [
        v
        for v in namespace.values()
        if isinstance(v, type) and issubclass(v, unittest.TestCase) and v.__module__ == "__tests__"
    ]:
        suite.addTests(unittest.TestLoader().loadTestsFromTestCase(case))
    expected = suite.countTestCases()
    result = unittest.TestResult()
    suite.run(result)
    problems = [f"{test}: {text}" for test, text in result.failures + result.errors]
    problems += [f"{test}: skipped ({why})" for test, why in result.skipped]
    if result.expectedFailures or result.unexpectedSuccesses:
        problems.append("expected failures are not passes")
    if expected == 0 or result.testsRun != expected:
        problems.append(f"{result.testsRun} of {expected} tests ran")
    if problems:
        print("\n".join(problems)[-20000:], file=sys.stderr)
        return
    _verdict(blob["verdict_fd"], blob["nonce"])


# --- unittest tasks: the tests in the solution's process ------------------------------------------

_REFUSED = (
    "gc.get_objects",
    "gc.get_referrers",
    "gc.get_referents",
    "sys._current_frames",
    "sys.settrace",
    "sys.setprofile",
    "sys.addaudithook",
    "cpython.PyInterpreterState_Clear",
    "cpython._PySys_ClearAuditHooks",
)


def _code(attrs: dict) -> dict:
    """The attributes that are code (functions, classes, modules, descriptors), not data or caches."""
    import types

    kinds = (
        type,
        types.ModuleType,
        types.FunctionType,
        types.BuiltinFunctionType,
        types.MethodType,
        staticmethod,
        classmethod,
        property,
    )
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

    nonce, verdict_fd = blob.pop("nonce"), blob.pop("verdict_fd")  # in memory: this mode is not robust
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
    test_case: type[unittest.TestCase] = unittest.TestCase
    test_suite: type[unittest.TestSuite] = unittest.TestSuite
    test_loader: type[unittest.TestLoader] = unittest.TestLoader
    test_result: type[unittest.TestResult] = unittest.TestResult
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

    def typed(function):
        def wrapper(*args, **kwargs):
            value = function(*args, **kwargs)
            check_types(value, known_types, 0)
            return value

        return wrapper

    solution = _load_solution("/tmp/task/solution.py", "solution")
    tests = dict(solution)
    tests["__name__"] = "__tests__"
    tests[blob["entry_point"]] = typed(solution[blob["entry_point"]])
    exec(compile(blob["test"], "tests", "exec"), tests)
    cases = [
        v for v in tests.values() if isinstance(v, type) and issubclass(v, test_case) and v.__module__ == "__tests__"
    ]
    suite = test_suite()
    for case in cases:
        suite.addTests(test_loader().loadTestsFromTestCase(case))
    expected = suite.countTestCases()

    class Result(test_result):  # type: ignore[valid-type, misc]  # bound before the solution loads (tamper-proof)
        passed = 0

        def addSuccess(self, test):
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
    verdict(verdict_fd, nonce)


def _all_types() -> set[int]:
    """Ids of every class that exists now (walking `object.__subclasses__`)."""
    seen: set[int] = {id(object), id(type)}
    todo: list[type] = [object]
    while todo:
        cls = todo.pop()
        try:
            subclasses: list[type] = type.__subclasses__(cls)
        except TypeError:
            continue
        for sub in subclasses:
            if id(sub) not in seen:
                seen.add(id(sub))
                todo.append(sub)
    return seen


def _check_types(value: object, known: frozenset[int] | set[int], depth: int) -> None:
    """Refuse a returned value (or a value in a returned list/tuple/dict/set) of a class created after
    the libraries were loaded, i.e. by the solution: its `__eq__` could say anything."""
    if id(type(value)) not in known:
        raise TypeError(f"the solution returned a {type(value).__qualname__}, a type it defined itself")
    attrs = getattr(value, "__dict__", None)
    if isinstance(attrs, dict):  # `df.equals = lambda *a: True` on a real DataFrame
        for name, attr in list(attrs.items())[:500]:
            if callable(attr) and callable(getattr(type(value), name, None)) and id(type(attr)) not in known:
                raise TypeError(
                    f"the solution replaced the method {name} of the {type(value).__qualname__} it returned"
                )
            if type(attr).__name__ == "function" and getattr(attr, "__module__", None) == "solution":
                raise TypeError(f"the solution attached its own {name} to the {type(value).__qualname__} it returned")
    if depth < 3 and type(value) in (list, tuple, set, frozenset):
        for item in list(value)[:1000]:  # type: ignore[call-overload]
            _check_types(item, known, depth + 1)
    elif depth < 3 and type(value) is dict:
        for key, item in list(value.items())[:1000]:
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
