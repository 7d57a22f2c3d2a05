"""``python -m dsen2`` runs the command line."""

import sys

from dsen2.cli import main

sys.exit(main())
