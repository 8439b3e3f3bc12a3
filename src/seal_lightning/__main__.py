"""`python -m seal_lightning`: the CLI (the guard matters: vLLM's engine starts workers with spawn)."""

import sys

from seal_lightning.cli import main

if __name__ == "__main__":
    sys.exit(main())
