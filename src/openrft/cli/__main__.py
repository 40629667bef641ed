import sys

from openrft.cli import main

sys.exit(main())
