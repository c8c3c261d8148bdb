"""The ``cds97530`` command line: the one composition point of the project.

    cds97530 check note.txt --units 2        # the library (plugin) on files
    cds97530 serve --clients clients.yaml    # the CDS service with the SMART page
    python -m cds97530 --help

Packages import downward only: ``plugin`` (the pure library) imports none of the others;
``cds_hooks`` (the service), ``smart_app`` (the SMART page), ``sandbox`` (the demo world) and
``audit`` import one another nowhere. This package alone puts them together (``cli.py``).
"""
