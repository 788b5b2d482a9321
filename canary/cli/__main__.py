"""`python -m canary.cli`: the same as the `canary` command."""
from . import entry

entry()
