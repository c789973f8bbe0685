"""``python -m textclf``: the CLI, also as ``torchrun ... -m textclf train ...``."""

import sys

from textclf.cli.main import main

if __name__ == "__main__":
    sys.exit(main())
