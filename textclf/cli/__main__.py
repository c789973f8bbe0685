"""``python -m textclf.cli``: the same entry point as the ``textclf`` command."""

import sys

from textclf.cli.main import main

sys.exit(main())
