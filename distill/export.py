"""`python -m distill.export`: export a trained student as a bundle (see distill.bundle.build)."""

from distill.bundle.build import main, parse_args, run

__all__ = ["main", "parse_args", "run"]

if __name__ == "__main__":
    main()
