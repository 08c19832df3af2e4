"""`python -m kr_reports.cli`: the same as `kr-reports`."""

import sys

from kr_reports.cli import main

if __name__ == "__main__":
    sys.exit(main())
