"""`taller …` and `python -m taller …`: the command line (apps/cli/).

Importing it takes a second or two (PyTorch): a Ctrl-C meanwhile ends as quietly as one later, with exit code 130.
This works because `import taller` itself is light (taller/__init__.py loads its names on first use), so the
interrupt arrives inside this try and not in a package __init__ that no caller can wrap."""

import sys

try:
    from taller.apps.cli import main
except KeyboardInterrupt:
    print("\nInterrumpido.", file=sys.stderr)
    sys.exit(130)

if __name__ == "__main__":
    main()
