"""`python -m medtune ...` == `medtune ...`; the entry point for `accelerate launch -m medtune train ...`."""

from .cli.main import main

if __name__ == "__main__":
    main()
