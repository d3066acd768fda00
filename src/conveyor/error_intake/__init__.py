"""The error intake Sentry SDKs send to: request bodies, envelopes, keys, rate limits and the batched writer.

A request is only verified, decoded, parsed and handed to the :class:`~.writer.EventWriter`, which commits
the events of every request waiting with it in one transaction (group commit) before any of them is
answered: an answered event is stored, and one process accepts thousands of envelopes per second.
See docs/errors.md.
"""
