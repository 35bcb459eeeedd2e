"""``python -m cdkd_core`` is the ``cdkd`` command (as torchrun needs)."""

from cdkd_core.cli import main

if __name__ == "__main__":
    main()
