"""Run the command line as ``python -m cxrvqa``."""

import sys

from .cli import main

sys.exit(main())
