"""Run the command line as ``python -m cxrvqa``."""

import sys

from cxrvqa.cli import main

sys.exit(main())
