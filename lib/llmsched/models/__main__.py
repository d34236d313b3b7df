"""``python -m llmsched.models``: see llmsched.models.cli."""

import sys

from llmsched.models.cli import main

sys.exit(main())
