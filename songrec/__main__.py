import sys

from songrec.cli import main

sys.exit(main())
