"""The one place that maps core nodes (`personas.Node`) to rows (`NodeRow`) and back.

`OrmStore` implements the core's async Store protocol for one chat session. Reads of whole
sessions (the debugger page) go through `load_tree`, one query whatever the size.
"""

from __future__ import annotations

import contextlib
from collections import OrderedDict
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from asgiref.sync import sync_to_async
from django.db import DEFAULT_DB_ALIAS, IntegrityError, connections, transaction
from django.db.models import Max
from django.utils import timezone

from personaweb.llm.types import CallRecord
from personaweb.personas.tree import Action, Node, NodeKind, NodeNotFound, NodeStatus
from personaweb.web.models import ChatSession, NodeRow

# Columns the tree, the transcript and path-derived state need. `call` (the full prompt, often
# large) and `data` (JSON to decode for every row) are left out: the inspector loads them for
# the one node it shows.
TREE_FIELDS = (
    "id",
    "parent_id",
    "persona",
    "kind",
    "status",
    "content",
    "action",
    "target",
    "sender",
    "seq",
    "created_at",
)


def to_node(row: NodeRow, *, with_call: bool = True) -> Node:
    """A core Node from a row (the call record only when loaded and wanted)."""
    call = row.call if with_call and "call" not in row.get_deferred_fields() else None
    return Node(
        id=row.id,
        parent_id=row.parent_id,
        persona=row.persona,
        kind=NodeKind(row.kind),
        status=NodeStatus(row.status),
        content=row.content,
        action=Action(row.action) if row.action else None,
        target=row.target or None,
        sender=row.sender,
        call=CallRecord.from_dict(call) if call else None,
        data=dict(row.data or {}),
        created_at=row.created_at,
        seq=row.seq,
    )


def to_row(node: Node, session_id: int) -> NodeRow:
    """An unsaved row holding the node's values, its call record whole (bulk inserts; the
    run's own writes go through `_insert` and `_update`, without a model instance)."""
    call = node.call.to_dict() if node.call is not None else None
    return NodeRow(**_values(node, session_id, call))


_TABLE = NodeRow._meta.db_table
_FIELDS: dict[str, Any] = {f.name: f for f in NodeRow._meta.concrete_fields}


def _values(node: Node, session_id: int, call: dict[str, Any] | None) -> dict[str, Any]:
    """A node's column values by attribute name, as a row holds them (no model instance:
    making one costs more than the INSERT it is for)."""
    return {
        "id": node.id,
        "session_id": session_id,
        "parent_id": node.parent_id,
        "persona": node.persona,
        "kind": node.kind.value,
        "status": node.status.value,
        "content": node.content,
        "action": node.action.value if node.action else "",
        "target": node.target or "",
        "sender": node.sender,
        "call": call,
        "data": node.data,
        "seq": node.seq,
        "created_at": node.created_at,
        "updated_at": timezone.now(),
    }


_SESSION_UPDATED_AT: Any = ChatSession._meta.get_field("updated_at")

_SQL: dict[tuple[str, str], str] = {}
"""The write statements' texts, made once per database vendor (quoting differs)."""


def _sql(db: Any, what: str) -> str:
    key = (db.vendor, what)
    text = _SQL.get(key)
    if text is None:
        quote = db.ops.quote_name
        if what == "follow":
            session = ChatSession._meta
            active = quote(str(session.get_field("active_node").column))
            updated = quote(str(session.get_field("updated_at").column))
            text = f"UPDATE {session.db_table} SET {active} = %s, {updated} = %s WHERE id = %s"
        elif what == "insert":
            columns = ", ".join(quote(str(f.column)) for f in _FIELDS.values())
            marks = ", ".join(["%s"] * len(_FIELDS))
            text = f"INSERT INTO {_TABLE} ({columns}) VALUES ({marks})"
        else:  # "update" / "update light": every mutable column (light: not the call)
            names = MUTABLE_FIELDS if what == "update" else LIGHT_MUTABLE_FIELDS
            sets = ", ".join(f"{quote(str(_FIELDS[f].column))} = %s" for f in names)
            text = f"UPDATE {_TABLE} SET {sets}, updated_at = %s WHERE session_id = %s AND id = %s"
        text = _SQL[key] = text
    return text


def _insert(
    node: Node, session_id: int, call: dict[str, Any] | None, *, unless_taken: bool = False
) -> bool:
    """One INSERT of every column (updated_at: now). `unless_taken`: a row whose id or
    sequence number is taken is not inserted (ON CONFLICT DO NOTHING, in SQLite and
    PostgreSQL alike: no savepoint to roll back to) and False says so."""
    db = connections[DEFAULT_DB_ALIAS]
    values = _values(node, session_id, call)
    params = [f.get_db_prep_save(values[f.attname], db) for f in _FIELDS.values()]
    conflict = " ON CONFLICT DO NOTHING" if unless_taken else ""
    with db.cursor() as cursor:
        cursor.execute(_sql(db, "insert") + conflict, params)
        return cursor.rowcount != 0


def _exists(session_id: int, node_id: str) -> bool:
    return NodeRow.objects.filter(session_id=session_id, id=node_id).exists()


# Everything but identity, place in the tree and creation order may change (a failed proposal
# even changes kind, to error).
MUTABLE_FIELDS = [
    "persona",
    "kind",
    "status",
    "content",
    "action",
    "target",
    "sender",
    "call",
    "data",
]
LIGHT_MUTABLE_FIELDS = [f for f in MUTABLE_FIELDS if f != "call"]


@dataclass
class Tree:
    """All nodes of a session as core Nodes (no call records, no data), indexed for rendering."""

    nodes: list[Node]
    """Every node, oldest first."""
    by_id: dict[str, Node] = field(default_factory=dict)
    children: dict[str | None, list[Node]] = field(default_factory=dict)
    """Children per parent id (None: the roots), oldest first."""

    def __post_init__(self) -> None:
        for node in self.nodes:
            self.by_id[node.id] = node
            self.children.setdefault(node.parent_id, []).append(node)

    def __len__(self) -> int:
        return len(self.nodes)

    def path(self, node_id: str) -> list[Node]:
        """Nodes root -> node_id (empty if unknown)."""
        out: list[Node] = []
        node = self.by_id.get(node_id)
        while node is not None:
            out.append(node)
            node = self.by_id.get(node.parent_id) if node.parent_id else None
        out.reverse()
        return out

    def newest_leaf_below(self, node_id: str) -> str:
        """Follow the newest child down to a leaf: the branch a click on node_id means."""
        current = node_id
        while kids := self.children.get(current):
            current = kids[-1].id
        return current

    def active_leaf(self, active_node: str) -> str:
        """The leaf a session shows: its active node followed down to the newest leaf below it
        (a run may have added children since it was set), else the newest leaf of all ('' for
        an empty tree). The one rule every page and run uses."""
        if active_node in self.by_id:
            return self.newest_leaf_below(active_node)
        return self.latest_leaf()

    def latest_leaf(self) -> str:
        """The newest leaf of the whole tree ('' for an empty tree)."""
        for node in reversed(self.nodes):
            if node.id not in self.children:
                return node.id
        return ""

    def subtree_size(self, node_id: str) -> int:
        """How many nodes hang under node_id, itself included."""
        count, stack = 0, [node_id]
        while stack:
            current = stack.pop()
            count += 1
            stack.extend(k.id for k in self.children.get(current, ()))
        return count


# Enum lookups by value, done once: NodeKind(value) per row is a measurable part of a big page.
_KINDS = {k.value: k for k in NodeKind}
_STATUSES = {s.value: s for s in NodeStatus}
_ACTIONS = {a.value: a for a in Action}


def _node_from_values(values: tuple) -> Node:
    (id_, parent_id, persona, kind, status, content, action, target, sender, seq, created) = values
    return Node(
        id=id_,
        parent_id=parent_id,
        persona=persona,
        kind=_KINDS[kind],
        status=_STATUSES[status],
        content=content,
        action=_ACTIONS[action] if action else None,
        target=target or None,
        sender=sender,
        created_at=created,
        seq=seq,
    )


def load_tree(session: ChatSession | int) -> Tree:
    """Every node of a session in one query, without call records and data (see TREE_FIELDS)."""
    session_id = session if isinstance(session, int) else session.pk
    values = NodeRow.objects.filter(session_id=session_id).order_by("seq").values_list(*TREE_FIELDS)
    return Tree([_node_from_values(v) for v in values])


def load_node(session_id: int, node_id: str) -> tuple[Node, bool] | None:
    """One node with its call record (its prompt whole), and whether it has children."""
    row = NodeRow.objects.filter(session_id=session_id, id=node_id).first()
    if row is None:
        return None
    has_children = NodeRow.objects.filter(session_id=session_id, parent_id=node_id).exists()
    node = to_node(row)
    if node.call is not None:
        expand_prompts(session_id, [node.call])
    return node, has_children


def path_rows(
    session_id: int, node_id: str, *, with_call: bool = False, stop_at: str | None = None
) -> list[NodeRow]:
    """Rows root -> node_id in one query (a recursive CTE: SQLite and PostgreSQL alike).
    With `stop_at`, the walk up ends at that node (included) if it meets it."""
    table = NodeRow._meta.db_table
    columns = [f for f in TREE_FIELDS if f != "parent_id"] + ["parent_id", "session_id", "data"]
    if with_call:
        columns.append("call")
    cols = ", ".join(f"n.{c}" for c in columns)
    params: list[object] = [node_id, session_id]
    stop = ""
    if stop_at is not None:
        stop = " WHERE up.id <> %s"
        params.append(stop_at)
    sql = (
        f"WITH RECURSIVE up(id, parent_id, depth) AS ("
        f"  SELECT id, parent_id, 0 FROM {table} WHERE id = %s AND session_id = %s"
        f"  UNION ALL"
        f"  SELECT p.id, p.parent_id, up.depth + 1 FROM {table} p JOIN up ON p.id = up.parent_id"
        f"{stop}"
        f") SELECT {cols} FROM up JOIN {table} n ON n.id = up.id ORDER BY up.depth DESC"
    )
    return list(NodeRow.objects.raw(sql, params))


# --- prompts, stored as differences -----------------------------------------------------------
#
# A persona's prompt mostly repeats its previous one (the same sheet, the same history, one
# turn more), and prompts are as long as the session: stored whole on every node they make a
# session's storage grow with the square of its length. So a call record's prompt is stored
# as the difference from the previous prompt the same persona sent in the session:
# `prompt_from = {"node": <that node>, "kept": k}` and `messages` = what follows the first k.
# Every PROMPT_FULL_EVERY-th call of a persona is stored whole, so reading one back follows at
# most that many links. Reading a node through this module always gives its prompt whole.

PROMPT_FULL_EVERY = 16


@dataclass
class _LastPrompt:
    node_id: str
    messages: list[dict[str, str]]
    links: int


_last_prompts: OrderedDict[tuple[int, str], _LastPrompt] = OrderedDict()
"""The last prompt each persona of recent sessions stored (process-wide, bounded)."""
_LAST_PROMPTS_KEPT = 2048


def _common_prefix(a: list[dict[str, str]], b: list[dict[str, str]]) -> int:
    n, i = min(len(a), len(b)), 0
    if b[:n] == a[:n]:
        return n  # the usual case, one more turn: compared in C, shared messages by identity
    while i < n and (a[i] is b[i] or a[i] == b[i]):
        i += 1
    return i


def expand_prompts(session_id: int, records: list[CallRecord]) -> None:
    """Make every record's prompt whole (in place), reading the nodes it was stored against
    (at most PROMPT_FULL_EVERY small queries per record)."""
    for record in records:
        chain: list[CallRecord] = []
        current = record
        while current.prompt_from and len(chain) <= 2 * PROMPT_FULL_EVERY:
            chain.append(current)
            raw = (
                NodeRow.objects.filter(session_id=session_id, id=current.prompt_from["node"])
                .values_list("call", flat=True)
                .first()
            )
            if not raw:
                break  # the node it was stored against is gone: keep what there is
            current = CallRecord.from_dict(raw)
        if current.prompt_from:
            continue
        whole = current.messages
        for link in reversed(chain):
            assert link.prompt_from is not None
            whole = whole[: int(link.prompt_from["kept"])] + link.messages
            link.messages, link.prompt_from = whole, None


class OrmStore:
    """The core's Store protocol over the rows of one session.

    Writes are the engine's hot path (a step writes two to four of them), so add and update
    are single statements through Django's connection (one SQL text for SQLite and
    PostgreSQL; values prepared by the model's own fields), not ORM saves, which cost several
    times as much. Creation order (`seq`) is counted here: read once, then incremented, as
    only one run writes a session at a time; the unique constraint on (session, seq) refuses a
    race that should never happen, and the counter is then read again.
    """

    def __init__(self, session_id: int) -> None:
        self.session_id = session_id
        self._seq: int | None = None
        self._checked: set[str] = set()
        """Personas whose remembered last prompt this store has found in the database."""
        self._held: list[tuple[str, Node]] | None = None
        """Writes held for the next flush (inside a batch), else None."""

    def _call_json(self, node: Node) -> dict[str, Any] | None:
        """The node's call record as stored: its prompt as a difference when it can be."""
        record = node.call
        if record is None:
            return None
        key = (self.session_id, node.persona)
        last = _last_prompts.get(key)
        if last is not None and node.persona not in self._checked:
            # Remembered from an earlier run (or a database since reset): still there?
            if not NodeRow.objects.filter(session_id=self.session_id, id=last.node_id).exists():
                last = None
            self._checked.add(node.persona)
        messages = record.messages
        kept = 0
        if last is not None and last.links < PROMPT_FULL_EVERY - 1 and not record.prompt_from:
            kept = _common_prefix(last.messages, messages)
        if kept:
            data = record.to_dict(messages=messages[kept:])
            data["prompt_from"] = {"node": last.node_id, "kept": kept}  # type: ignore[union-attr]
            links = last.links + 1  # type: ignore[union-attr]
        else:
            data = record.to_dict()
            links = 0
        _last_prompts[key] = _LastPrompt(node.id, messages, links)
        _last_prompts.move_to_end(key)
        while len(_last_prompts) > _LAST_PROMPTS_KEPT:
            _last_prompts.popitem(last=False)
        self._checked.add(node.persona)
        return data

    # -- holding writes ------------------------------------------------------------------------
    #
    # Inside `batch()`, adds and updates are held and written together at the next `flush()`
    # (one trip to the database thread, one transaction) instead of one trip each. The engine
    # batches the writes of a run and flushes as every LLM call goes out (the call's answer
    # waits for the write) and when it stops, so what is persisted before a call answers is
    # everything that happened before it. Reads flush first. Flushes are written in the
    # order they start: each is one job on the run's database thread (sync_to_async,
    # thread-sensitive), which runs its jobs one at a time, in order.

    @contextlib.asynccontextmanager
    async def batch(self) -> AsyncIterator[None]:
        if self._held is not None:
            yield  # already holding: the outer batch flushes
            return
        self._held = []
        try:
            yield
        finally:
            try:
                await self.flush()
            finally:
                self._held = None

    async def flush(self) -> None:
        if self._held:
            held, self._held = self._held, []
            await sync_to_async(self._write_all)(held)

    def _write_all(self, held: list[tuple[str, Node]]) -> None:
        with transaction.atomic():
            self._write_held(held)
            added = [node for what, node in held if what == "add"]
            if added:
                self._follow(added[-1])

    def _follow(self, node: Node) -> None:
        """The newest node is where the session's page opens: it follows the run. Written
        with the node (the same transaction), never by a frame renderer waiting for the
        database's write lock behind the run."""
        db = connections[DEFAULT_DB_ALIAS]
        now = _SESSION_UPDATED_AT.get_db_prep_save(timezone.now(), db)
        with db.cursor() as cursor:  # one statement, no queryset to build (a flush's hot path)
            cursor.execute(_sql(db, "follow"), [node.id, now, self.session_id])

    def _write_held(self, held: list[tuple[str, Node]]) -> None:
        renumber = False
        for what, node in held:
            if what != "add":
                self._update(node)
                continue
            if renumber:
                assert self._seq is not None
                self._seq += 1
                node.seq = self._seq
            call = self._call_json(node)  # once: it remembers this prompt
            if not self._insert_numbered(node, call):
                # Another writer took numbers this batch counted on: count again from
                # the database, for this add and every held add after it (keeping order).
                renumber = True
                self._read_seq()
                assert self._seq is not None
                self._seq += 1
                node.seq = self._seq
                if not self._insert_numbered(node, call):
                    raise IntegrityError(f"node {node.id}: no free sequence number")

    def _hold(self, what: str, node: Node) -> None:
        assert self._held is not None
        for i, (before, earlier) in enumerate(self._held):
            if earlier.id != node.id:
                continue
            # One write per node: an update of a held node replaces it (keeping a call
            # record the new one leaves out).
            if node.call is None and earlier.call is not None:
                node.call = earlier.call
            self._held[i] = (before, node)
            return
        self._held.append((what, node))

    async def add(self, node: Node) -> Node:
        if self._held is not None:
            if self._seq is None:
                await sync_to_async(self._read_seq)()
            assert self._seq is not None
            self._seq += 1
            node.seq = self._seq
            self._hold("add", node.copy())
            return node
        await sync_to_async(self._add)(node)
        return node

    def _read_seq(self) -> None:
        top = NodeRow.objects.filter(session_id=self.session_id).aggregate(m=Max("seq"))
        self._seq = top["m"] or 0

    def _insert_numbered(self, node: Node, call: dict[str, Any] | None) -> bool:
        """Insert a node whose seq is already counted (a held add); False if that number is
        taken. (Inside the flush's transaction, with no savepoint of its own: a statement
        per insert fewer, and the run's writes are the hot path.)"""
        if _insert(node, self.session_id, call, unless_taken=True):
            return True
        if NodeRow.objects.filter(id=node.id).exists():
            raise IntegrityError(f"node {node.id} exists already")  # not a numbering clash
        return False

    def _add(self, node: Node) -> None:
        call = self._call_json(node)  # once: it remembers this prompt as the persona's last
        for attempt in range(2):
            if self._seq is None or attempt:
                top = NodeRow.objects.filter(session_id=self.session_id).aggregate(m=Max("seq"))
                self._seq = top["m"] or 0
            node.seq = self._seq + 1
            try:
                with transaction.atomic():
                    _insert(node, self.session_id, call)
                    self._follow(node)
            except IntegrityError as exc:
                if node.parent_id is not None and not _exists(self.session_id, node.parent_id):
                    raise NodeNotFound(node.parent_id) from exc
                if attempt:
                    raise
                continue  # another writer took this number: count again
            self._seq = node.seq
            return

    async def update(self, node: Node) -> None:
        if self._held is not None:
            self._hold("update", node.copy())
            return
        await sync_to_async(self._update)(node)

    def _update(self, node: Node) -> None:
        # A node read without its call record (a path) keeps the one stored.
        db = connections[DEFAULT_DB_ALIAS]
        full = node.call is not None
        values = _values(node, self.session_id, self._call_json(node))
        names = MUTABLE_FIELDS if full else LIGHT_MUTABLE_FIELDS
        params = [_FIELDS[f].get_db_prep_save(values[f], db) for f in names]
        params.append(_FIELDS["updated_at"].get_db_prep_save(values["updated_at"], db))
        with db.cursor() as cursor:
            cursor.execute(
                _sql(db, "update" if full else "update light"), [*params, self.session_id, node.id]
            )
            changed = cursor.rowcount
        if not changed:
            raise NodeNotFound(node.id)

    async def get(self, node_id: str, *, with_call: bool = True) -> Node:
        await self.flush()
        return await sync_to_async(self._get)(node_id, with_call)

    def _get(self, node_id: str, with_call: bool = True) -> Node:
        rows = NodeRow.objects.filter(session_id=self.session_id, id=node_id)
        try:
            node = to_node(rows.get() if with_call else rows.defer("call").get())
        except NodeRow.DoesNotExist:
            raise NodeNotFound(node_id) from None
        if node.call is not None:
            expand_prompts(self.session_id, [node.call])
        return node

    async def path(self, node_id: str) -> list[Node]:
        await self.flush()
        return await sync_to_async(self._path)(node_id)

    def _path(self, node_id: str) -> list[Node]:
        rows = path_rows(self.session_id, node_id)
        if not rows:
            raise NodeNotFound(node_id)
        return [to_node(r, with_call=False) for r in rows]

    async def path_below(self, ancestor_id: str, node_id: str) -> list[Node] | None:
        await self.flush()
        return await sync_to_async(self._path_below)(ancestor_id, node_id)

    def _path_below(self, ancestor_id: str, node_id: str) -> list[Node] | None:
        rows = path_rows(self.session_id, node_id, stop_at=ancestor_id)
        if not rows or rows[0].id != ancestor_id:
            return None
        return [to_node(r, with_call=False) for r in rows]

    async def children(self, node_id: str) -> list[Node]:
        await self.flush()
        return await sync_to_async(self._children)(node_id)

    def _children(self, node_id: str) -> list[Node]:
        # Without call records (a child's prompt is as long as the session, and unread here),
        # and sorted here: ORDER BY seq would have SQLite walk the session's (session, seq)
        # index over every node rather than look up the few children by (session, parent).
        rows = NodeRow.objects.filter(session_id=self.session_id, parent_id=node_id)
        children = sorted(rows.defer("call").order_by(), key=lambda r: r.seq)
        return [to_node(r, with_call=False) for r in children]

    # -- beyond the protocol ---------------------------------------------------------------

    def all_nodes(self) -> list[Node]:
        """Every node with its call record, prompts whole (an export)."""
        rows = NodeRow.objects.filter(session_id=self.session_id).order_by("seq")
        nodes = [to_node(r) for r in rows]
        whole: dict[str, list[dict[str, str]]] = {}
        for node in nodes:  # a prompt is stored against an earlier node: expand in order
            call = node.call
            if call is None:
                continue
            ref = call.prompt_from
            if ref and ref["node"] in whole:
                call.messages = whole[ref["node"]][: int(ref["kept"])] + call.messages
                call.prompt_from = None
            elif ref:
                expand_prompts(self.session_id, [call])
            whole[node.id] = call.messages
        return nodes

    def add_many(self, nodes: list[Node]) -> None:
        """Bulk insert (imports, benchmarks): seq continues after the session's last node."""
        top = NodeRow.objects.filter(session_id=self.session_id).aggregate(m=Max("seq"))["m"] or 0
        rows = []
        for i, node in enumerate(nodes, start=1):
            node.seq = top + i
            rows.append(to_row(node, self.session_id))
        NodeRow.objects.bulk_create(rows, batch_size=500)
