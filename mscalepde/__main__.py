"""``python -m mscalepde`` is the ``mscalepde`` command."""

import sys

from mscalepde.cli import main

sys.exit(main())
