"""``python -m training ...`` is ``cxr-train ...``."""

import sys

from .cli import main

sys.exit(main())
