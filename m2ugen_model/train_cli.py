"""``python -m m2ugen_model.train_cli``: the trainer's old module path, kept because torchrun lines copied
from earlier docs name it. The command lives in ``m2ugen_model.train.cli`` (``m2ugen-train``)."""

from m2ugen_model.train.cli import app, main

__all__ = ["app", "main"]

if __name__ == "__main__":
    main()
