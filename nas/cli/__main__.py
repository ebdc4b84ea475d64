"""``python -m nas.cli COMMAND ...`` (what ``make demo`` runs)."""

import sys

from nas.cli.main import main

sys.exit(main())
