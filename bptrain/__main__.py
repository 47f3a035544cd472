"""``python -m bptrain``: the same as the ``bptrain`` command."""

from bptrain.cli import main

if __name__ == "__main__":
    main()
