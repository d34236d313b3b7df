"""`python -m llmsched.sim write|list`: write the shipped analytic step-time profiles, or list them."""

from llmsched.sim.profiles import main

if __name__ == "__main__":
    main()
