"""The event record: every committed state change clients may hear about, in commit order.

The promise it keeps: a client that remembers the highest `event_id` it has
seen and reconnects with it (`/ws/?last_event_id=N`), to any server process,
receives every event it missed that it may see, exactly once, in commit
order; on one socket event ids only grow. How this package keeps it:

- **Ids commit in id order.** `record.event_record`, the only writer, inserts
  each event under a transaction-level lock held until commit (PostgreSQL's
  `pg_advisory_xact_lock`; SQLite's single writer does the same). An id is
  drawn at insert, not at commit, so without the lock a transaction holding
  id 10 could commit after one holding 11, and a client that saw 11 would
  never hear of 10. With it, the committed events are always a prefix of the
  id sequence.
- **The database is the log.** Live delivery (the realtime app's per-process
  pump) reads `id > cursor` with `reads.events_after`; the channel layer only
  rings a doorbell to say "read now". A lost or late doorbell delays an
  event until the next read (at most a second), never loses or reorders it.
- **Resume replays from the same log.** `reads.events_for_replay_batch`
  returns what one user may see in (N, H], including the rooms they left in
  that span up to their leaving; the realtime app shapes it with the same
  function as live frames.
- **A user is told only their part of the log.** `hello` and `resume.done`
  carry `reads.newest_visible_event_id` (at least the pruned-through mark),
  not the global newest id, which would show activity in rooms they cannot
  see. The events between the two are none of theirs, so resuming from
  the id they were told replays nothing twice and misses nothing.
- **Retention is explicit.** `retention.events_prune` deletes old events and
  first raises the pruned-through mark, with a mark per room and per user of
  the newest event it removes: a cursor below it is told `resync.required`
  when one of its user's marks lies above it (`reads.pruned_events_missed`),
  and `reads.newest_event_id` never falls below it, so a quiet server whose
  every event was pruned still knows where its log stands.
- **Forgetting is the only rewrite.** A deleted message's text leaves every
  event that carried it (`record.event_payloads_redact`), and an erased
  account's name every event that carried its user shape
  (`record.event_payloads_replace_user`), each in its action's own
  transaction.
"""

from rooms.events.models import Event, EventLogState, PrunedEventMark
from rooms.events.reads import (
    FETCH_BATCH,
    REPLAY_BATCH,
    events_after,
    events_between,
    events_for_replay_batch,
    log_position,
    newest_event_id,
    newest_visible_event_id,
    pruned_events_missed,
    pruned_through,
)
from rooms.events.record import event_payloads_redact, event_payloads_replace_user, event_record
from rooms.events.retention import events_prune

__all__ = [
    "FETCH_BATCH",
    "REPLAY_BATCH",
    "Event",
    "EventLogState",
    "PrunedEventMark",
    "event_payloads_redact",
    "event_payloads_replace_user",
    "event_record",
    "events_after",
    "events_between",
    "events_for_replay_batch",
    "events_prune",
    "log_position",
    "newest_event_id",
    "newest_visible_event_id",
    "pruned_events_missed",
    "pruned_through",
]
