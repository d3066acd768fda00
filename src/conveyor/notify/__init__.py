"""Notifications: who hears about which event, and getting it to them without slowing any deploy.

1. At process start the config's routing (:class:`~conveyor.notify.routing.Router`) is installed on the
   :class:`~conveyor.store.database.Database`.
2. :func:`conveyor.store.events.record_event` asks it who hears about each event it writes and adds one
   ``outbox`` row per notifier, in the same transaction as the event: both commit or neither does.
3. The :class:`~conveyor.notify.sender.Sender` (a thread of every ``serve`` and ``worker``) claims due
   rows under a lease (:mod:`conveyor.notify.outbox`), delivers them through the notifier plugins
   (:mod:`conveyor.notifiers`) on its own thread pool, and retries failures with backoff
   (:mod:`conveyor.config.retry`). One notifier gets one release's notifications in event order.

Nothing here is on a deployment's path: an outbox row is written and forgotten by the engine.
"""
