"""`python -m kcity` — the same as the `kcity` console script (used to spawn services)."""

from kcity.cli import main

main()
