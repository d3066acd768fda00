"""Sources: where releases come from without anyone typing ``conveyor release``.

- :mod:`conveyor.sources.poll`: repositories watched with ``git ls-remote`` (``poll:`` on an app).
"""
