"""The fan-out's progress bar now lives in :mod:`tskit.ops.progress`; these names stay for the old CLI module."""

from tskit.ops.progress import close_open_bars as close_open_bars
from tskit.ops.progress import progress_bar as progress_bar
