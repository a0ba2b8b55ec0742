"""`python -m rnnreg ...`: see rnnreg.cli."""

import sys

from rnnreg.cli import main

sys.exit(main())
