"""`python -m distill.compress`: factor a trained student's embedding table (see distill.training.compress)."""

from distill.training.compress import main, parse_args, run

__all__ = ["main", "parse_args", "run"]

if __name__ == "__main__":
    main()
