import sys

from cactus.cli import main

sys.exit(main())
