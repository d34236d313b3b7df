"""python -m llmsched.webreport PROFILE [--browser]"""

import sys

from llmsched.webreport import main

sys.exit(main())
