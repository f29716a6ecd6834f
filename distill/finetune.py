"""`python -m distill.finetune`: fine-tune an encoder into a teacher (see distill.teacher.finetune)."""

from distill.teacher.finetune import main, parse_args, run

__all__ = ["main", "parse_args", "run"]

if __name__ == "__main__":
    main()
