"""``python -m medseg3d.cli``: the same as the ``medseg3d`` command."""

import sys

from . import main

sys.exit(main())
