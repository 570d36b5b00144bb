"""`python -m audioprune ...` and `torchrun -m audioprune train ...`."""

import sys

from audioprune.cli import main

sys.exit(main())
