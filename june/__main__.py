"""`python -m june` is the `june` command."""

from june.cli import app

app(prog_name="june")
