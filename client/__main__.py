"""`python -m client`: the terminal client's entry point."""

import sys

from client.cli import main

sys.exit(main())
