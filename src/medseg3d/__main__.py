"""``python -m medseg3d ...``: the same as the ``medseg3d`` command."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
