"""`python -m analysis.cli`: the `periodize` command."""

import sys

from analysis.cli import main

sys.exit(main())
