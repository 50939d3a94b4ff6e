"""``python -m ratt`` (also what ``torchrun -m ratt`` runs)."""

import sys

from ratt.cli import main

sys.exit(main())
