"""`python -m llmsched.steptime write|list`: write the shipped analytic step-time profiles or list them.
Calibrating a linear profile against the real engine: `python -m llmsched.serving.calibrate --help`."""

import sys

from llmsched.steptime.profiles import main

if __name__ == "__main__":
    main(sys.argv[1:])
