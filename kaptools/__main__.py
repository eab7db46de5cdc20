"""``python -m kaptools``: the same as the ``kaptools`` command."""

from kaptools.cli import main

if __name__ == "__main__":
    main()
