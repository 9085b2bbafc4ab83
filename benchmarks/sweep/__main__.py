"""``python -m benchmarks.sweep``."""

import sys

from benchmarks.sweep import main

main(sys.argv[1:])
