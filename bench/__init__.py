"""``make bench``: figures for start-up, look-ups and bulk work. Each ``bench_*.py`` module has a
``run(context)`` that prints its own lines; nothing here asserts."""
