"""``python -m cds97530``: the same as the ``cds97530`` script."""
import sys

from cds97530.cli import main

sys.exit(main())
