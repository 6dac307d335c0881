"""``python -m lambdasim``: the command line, run by this interpreter (and so with its packages)."""

import sys

from lambdasim.cli import main

sys.exit(main())
