"""`python -m llmsched.sim write|list|calibrate`: write the shipped analytic step-time profiles, list them, or
calibrate a linear profile against the real vLLM engine (`calibrate --help`)."""

import sys

from llmsched.sim.profiles import main


def _main(argv: list[str]) -> None:
    if argv[:1] == ["calibrate"]:
        from llmsched.sim.calibrate import main as calibrate_main

        calibrate_main(argv[1:])
    elif argv[:1] in (["-h"], ["--help"]):
        print("calibrate: python -m llmsched.sim calibrate --model gemma  (options: calibrate --help)\n")
        main(argv)
    else:
        main(argv)


if __name__ == "__main__":
    _main(sys.argv[1:])
