"""``python -m benchmarks.textgen``."""

import sys

from benchmarks.textgen import main

main(sys.argv[1:])
