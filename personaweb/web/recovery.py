"""Recovery: runs of processes that died are marked interrupted, and so are their unfinished
nodes, so a person can resume them from any process.

Every step is persisted by the engine before the next begins, so a run that dies with its
process leaves nodes `pending`/`streaming`. The first use of the runs in a new process marks
those of dead processes `interrupted` (`ensure_recovered`), and a run about to start on a
session first reclaims that session's stale run, if any (`reclaim_stale`).

A run is dead when another worker owns it and its heartbeat is older than RUN_STALE_AFTER
seconds; with RUN_STALE_AFTER 0 (one process per database, the default) every run of another
worker is dead.
"""

from __future__ import annotations

import logging
import os
import socket
import uuid
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from personaweb.personas import NodeStatus
from personaweb.personas.tree import UNFINISHED
from personaweb.web.models import NodeRow, Run, RunStatus

log = logging.getLogger("personaweb.web.recovery")

WORKER_ID = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
"""Who owns a run row: this process (a restart is a new worker)."""
STALE = "the process stopped"

_recovered = False


def interrupt_session(session_id: int) -> int:
    """Mark the session's unfinished nodes interrupted; returns how many."""
    return NodeRow.objects.filter(
        session_id=session_id, status__in=[s.value for s in UNFINISHED]
    ).update(status=NodeStatus.INTERRUPTED.value, updated_at=timezone.now())


def is_dead(run: Run, now: datetime | None = None) -> bool:
    """Whether a running run's process is gone (see the module doc)."""
    if run.worker == WORKER_ID:
        return False
    if not settings.RUN_STALE_AFTER:
        return True
    now = now or timezone.now()
    beat = run.heartbeat_at or run.started_at
    return beat < now - timedelta(seconds=settings.RUN_STALE_AFTER)


def reclaim_stale(session_id: int) -> bool:
    """With several processes, a run of this session whose heartbeat stopped belongs to a dead
    process: mark it and its unfinished nodes interrupted. True if it did."""
    if not settings.RUN_STALE_AFTER:
        return False  # one process: runs of other workers were recovered at start-up
    cutoff = timezone.now() - timedelta(seconds=settings.RUN_STALE_AFTER)
    with transaction.atomic():
        dead = Run.objects.filter(
            session_id=session_id, status=RunStatus.RUNNING, heartbeat_at__lt=cutoff
        ).exclude(worker=WORKER_ID)
        if dead.update(status=RunStatus.INTERRUPTED, finished_at=timezone.now(), error=STALE):
            interrupt_session(session_id)
            return True
    return False


def recover(now: datetime | None = None) -> int:
    """Mark the runs of dead processes interrupted, and their unfinished nodes. Returns the
    number of nodes marked."""
    now = now or timezone.now()
    with transaction.atomic():
        live = Run.objects.filter(status=RunStatus.RUNNING)
        dead = live.exclude(worker=WORKER_ID)
        if settings.RUN_STALE_AFTER:
            dead = dead.filter(heartbeat_at__lt=now - timedelta(seconds=settings.RUN_STALE_AFTER))
        dead_sessions = set(dead.values_list("session_id", flat=True))
        dead.update(status=RunStatus.INTERRUPTED, finished_at=now, error=STALE)
        busy = set(
            Run.objects.filter(status=RunStatus.RUNNING).values_list("session_id", flat=True)
        )
        unfinished = NodeRow.objects.filter(status__in=[s.value for s in UNFINISHED])
        # Sessions with no live run left cannot have a node legitimately in progress.
        stuck = unfinished.exclude(session_id__in=busy - dead_sessions)
        return stuck.update(status=NodeStatus.INTERRUPTED.value, updated_at=now)


def ensure_recovered() -> None:
    """Recover once per process, on first use (AppConfig.ready must not touch the DB)."""
    global _recovered
    if _recovered:
        return
    count = recover()
    _recovered = True  # only once it worked: a locked database is tried again next time
    if count:
        log.info("marked %d unfinished node(s) from a stopped process as interrupted", count)


def reset_for_tests() -> None:
    global _recovered
    _recovered = False
