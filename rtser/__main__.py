"""``python -m rtser``."""

import sys

from .cli import main

sys.exit(main())
