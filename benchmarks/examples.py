"""The examples a task's docstring shows, run on a solution in its sandbox (the agent's first check).

Two notations occur in HumanEval's prompts: doctest (`>>> f(1)` then the result, 76 tasks) and
calls written out with their result (`f(1) ➞ 2`, `f(1) == 2`, `f(1) returns 2`, `f(1) => 2`...,
57 tasks, e.g. HumanEval/98's `count_upper('aBCdEf') returns 1`). These are part of the prompt the
model sees, never the hidden tests. The harness uses them only to decide whether a draft goes in as
it is: a draft that already gives every shown result is submitted without more turns, which can
only break it (HumanEval/98: the 1.5B checked one example, got the shown result, then "fixed" a
correct draft into a wrong one).
"""

from __future__ import annotations

import ast
import json
import re

from benchmarks.datasets import Task
from benchmarks.sandbox import Result, Sandbox

_DOCTEST = """import doctest, sys
import solution
test = doctest.DocTestParser().get_doctest(sys.argv[1], dict(vars(solution)), "examples", "solution.py", 0)
result = doctest.DocTestRunner(optionflags=doctest.NORMALIZE_WHITESPACE).run(test)
print(f"{result.attempted - result.failed} of {result.attempted} examples pass")
sys.exit(1 if result.failed else 0)
"""

_CALLS = """import ast, json, sys
import solution
examples = json.loads(sys.argv[1])
failed = 0
for call, want in examples:
    try:
        got = eval(call, dict(vars(solution)))
        ok = got == ast.literal_eval(want)
    except Exception as e:
        got, ok = f"{type(e).__name__}: {e}", False
    if not ok:
        failed += 1
        print(f"Failed example: {call}\\nExpected: {want}\\nGot: {got!r}")
print(f"{len(examples) - failed} of {len(examples)} examples pass")
sys.exit(1 if failed else 0)
"""

_RESULT_MARK = re.compile(r"\s*(?:==>|=>|➞|->|→|==|=|should\s+return\b|returns?\b|gives?\b)\s*(.+?)\s*[.,;]?\s*$")
"""What separates a written call from its result, then the result (a trailing full stop dropped)."""


def run_examples(task: Task, sandbox: Sandbox) -> Result | None:
    """Run the `>>>` examples of the task's docstring (the entry point's in the starter: part of the
    prompt, not the hidden tests) on solution.py in `sandbox`, with doctest; None without examples.
    The output ends with "N of M examples pass"; `ok` when all do. Its failures are worth showing
    the model: doctest's notation is exact."""
    docstring = _entry_docstring(task)
    if not docstring or ">>>" not in docstring:
        return None
    return sandbox.run(["python", "-c", _DOCTEST, docstring])


def run_written_calls(task: Task, sandbox: Sandbox) -> Result | None:
    """Run the calls the docstring writes out with their results (`f(x) ➞ y` and the like, see
    `written_calls`) on solution.py in `sandbox`, comparing with ==; None when there are none (or the
    docstring has doctest examples: `run_examples` reads those). The output ends with "N of M
    examples pass". A failure here is only a hint: these lines are sometimes a definition rather
    than a call (HumanEval/130's `tri(1) = 3`) or loosely written (HumanEval/148's `("Venus")` for a
    1-tuple), so a correct solution can miss them."""
    docstring = _entry_docstring(task)
    if not docstring or ">>>" in docstring:
        return None
    calls = written_calls(docstring, task.entry_point)
    if not calls:
        return None
    return sandbox.run(["python", "-c", _CALLS, json.dumps(calls)])


def written_calls(docstring: str, name: str) -> list[tuple[str, str]]:
    """(call, result) source pairs from lines of `docstring` that start with a call of `name` whose
    arguments are literals, followed by a result mark and a literal: `count_upper('aBCdEf') returns
    1` → ("count_upper('aBCdEf')", "1"). Lines in any other shape are skipped."""
    found = []
    for line in docstring.splitlines():
        text = line.strip()
        if not text.startswith(name + "("):
            continue
        for close in re.finditer(r"\)", text):  # the shortest prefix that parses as the call
            call = text[: close.end()]
            try:
                node = ast.parse(call, mode="eval").body
            except SyntaxError:
                continue
            mark = _RESULT_MARK.match(text[close.end() :])
            if mark and isinstance(node, ast.Call) and _literal(*node.args, *(k.value for k in node.keywords)) \
                    and _literal(want := mark.group(1)):  # fmt: skip
                found.append((call, want))
            break
    return found


def _literal(*sources: ast.expr | str) -> bool:
    try:
        for source in sources:
            ast.literal_eval(source)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return False
    return True


def _entry_docstring(task: Task) -> str | None:
    try:
        tree = ast.parse(task.starter)
    except SyntaxError:
        return None
    node = next((n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
                 and n.name == task.entry_point), None)  # fmt: skip
    return _docstring_as_written(task.starter, node) if node else None


def _docstring_as_written(source: str, node: ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) -> str | None:
    """`node`'s docstring as it reads in `source`, escapes unprocessed: the examples a reader sees.
    `remove_vowels("abcdef\\nghijklm")` in a plain docstring is a newline once evaluated, which
    doctest cannot parse (HumanEval/51); written out, it is the call the prompt shows."""
    body = node.body[0] if node.body else None
    if not (isinstance(body, ast.Expr) and isinstance(body.value, ast.Constant) and isinstance(body.value.value, str)):
        return None
    written = ast.get_source_segment(source, body.value) or ""
    literal = written.lstrip("rRuU")
    for quote in ('"""', "'''", '"', "'"):
        if len(literal) >= 2 * len(quote) and literal.startswith(quote) and literal.endswith(quote):
            return literal[len(quote) : -len(quote)]
    return ast.get_docstring(node, clean=False)  # implicitly joined strings: the evaluated text
