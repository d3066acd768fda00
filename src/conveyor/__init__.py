"""conveyor: a continuous-deployment conductor.

Merged, green changes flow on their own through an ordered list of environments. In each environment a
release is deployed, checked, then promoted; people step in only where policy says. Every decision is
recorded with its reasons, so "why didn't my change go out?" always has an answer.
"""

__version__ = "0.1.0"
