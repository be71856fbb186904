"""``python -m m2ugen_data.cli``: the same as the ``m2ugen-data`` console script."""

from m2ugen_data.cli.root import main

main()
