"""``python -m phaser``: the same as the ``phaser`` command."""

import sys

from .cli import main

sys.exit(main())
