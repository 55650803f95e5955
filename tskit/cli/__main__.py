"""``python -m tskit.cli``: the same as the ``tskit`` command."""

import sys

from tskit.cli import main

sys.exit(main())
