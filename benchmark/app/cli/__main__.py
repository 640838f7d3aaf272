"""`python -m benchmark.app.cli`: the `tracer-bench` command."""

import sys

from benchmark.app.cli import main

sys.exit(main())
