"""``python -m mscalepde`` is the ``mscalepde`` command."""

import sys

from .cli import main

sys.exit(main())
