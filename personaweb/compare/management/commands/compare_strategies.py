"""`python manage.py compare_strategies --character "Jon Johns" --strategies single,nested,linear
--samples 8 [--script FILE] [--json OUT] [--csv OUT] [--figures-csv OUT]`: the experiment.

Does for the command line exactly what the Compare page does, with the same code: creates a
comparison (`setup.create_comparison`), plays it (`running.start`: the web app's run manager,
one autonomous session per contender, every step persisted), measures it (`metrics`,
`results`) and exports it (`exports`). So the comparison also appears on the Compare page of
the `--user` who owns it, with a debugger tree behind every reply.

The endpoint is the one the app uses (OPENAI_BASE_URL, OPENAI_API_KEY, PERSONAWEB_MODEL); with
nothing configured it starts the embedded model, as `manage.py llm_check` does, unless one
already answers. Exit status 1 when a contender stopped short (the table still prints, the
files are still written).
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING, Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.test.utils import override_settings

from personaweb.compare import exports, metrics, results, running
from personaweb.compare.lookup import CharacterNotFound, character_row, find_character
from personaweb.compare.models import Comparison
from personaweb.compare.samples import MAX_SAMPLES, default_samples
from personaweb.compare.setup import (
    DEFAULT_SCRIPT,
    MAX_CONTENDERS,
    MAX_LINE_CHARS,
    MAX_LINES,
    ContenderSpec,
    create_comparison,
)
from personaweb.compare.templatetags.compare_figures import estimate
from personaweb.llm.config import EndpointConfig, endpoint_from_env

if TYPE_CHECKING:
    from personaweb.llm.embedded import EmbeddedServer
from personaweb.personas import STRATEGIES

PROGRESS_EVERY_S = 1.0
"""How often the progress bar is redrawn (each redraw reads every contender's tree)."""
BAR_WIDTH = 30
STALE_AFTER_S = 60
"""Beside a server on the same database, another worker's run is dead only after this long
without a heartbeat (the server beats every RUN_HEARTBEAT_EVERY seconds)."""


def read_script(path: str) -> list[str]:
    """Non-blank lines of a script file (UTF-8; bad bytes replaced)."""
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise CommandError(f"cannot read the script {path}: {exc.strerror or exc}") from None
    lines = [line.strip() for line in raw.decode("utf-8", errors="replace").splitlines()]
    lines = [line for line in lines if line]
    if not lines:
        raise CommandError(f"the script {path} has no lines")
    if len(lines) > MAX_LINES:
        raise CommandError(f"a script has at most {MAX_LINES} lines ({path} has {len(lines)})")
    for number, line in enumerate(lines, 1):
        if len(line) > MAX_LINE_CHARS:
            raise CommandError(f"line {number} of {path} is longer than {MAX_LINE_CHARS} chars")
    return lines


def parse_strategies(text: str) -> list[str]:
    chosen = [s.strip() for s in text.split(",") if s.strip()]
    unknown = [s for s in chosen if s not in STRATEGIES]
    if unknown:
        raise CommandError(f"unknown strategy {unknown[0]!r}; choose from {', '.join(STRATEGIES)}")
    if not 2 <= len(chosen) <= MAX_CONTENDERS:
        raise CommandError(f"compare 2 to {MAX_CONTENDERS} strategies (got {len(chosen)})")
    return chosen


def table(found: results.Results, columns: list[metrics.Column]) -> list[str]:
    """The figures as fixed-width text: one row per contender, then the sentences."""
    heads = (
        "",
        "style score",
        "distance",
        "calls/reply",
        "tokens/reply",
        "latency/reply",
        "replies",
    )
    rows = [heads]
    for r, column in zip(found.contenders, columns, strict=True):
        status = "" if column.status == "done" else f"  [{column.status}]"
        rows.append(
            (
                f"{r.letter} {r.name}{status}",
                estimate(r.score),
                estimate(r.distance),
                estimate(r.calls, 1),
                estimate(r.tokens, 0),
                estimate(r.latency_s) + " s" if r.latency_s else estimate(None),
                str(r.answered),
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(heads))]
    lines = [
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    lines.append("")
    lines.extend(
        found.sentences or ["(no difference to state: fewer than two contenders answered)"]
    )
    return lines


class Command(BaseCommand):
    help = "Run a comparison of strategies for one character and print the figures."

    _shown = -1
    """Replies done at the last progress line (a log gets a line per change only)."""

    def prepare_database(self) -> None:
        """The comparison is kept (it shows on the Compare page): a database `make run` has
        not prepared yet is migrated first, as `make run` would, instead of failing."""
        from django.db import connection
        from django.db.migrations.executor import MigrationExecutor

        executor = MigrationExecutor(connection)
        if executor.migration_plan(executor.loader.graph.leaf_nodes()):
            self.stdout.write("preparing the database (manage.py migrate) ...")
            call_command("migrate", interactive=False, verbosity=0)

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--character", required=True, help="a character's name or slug")
        parser.add_argument(
            "--strategies", default="single,nested", help="comma-separated: single,nested,linear"
        )
        parser.add_argument(
            "--samples",
            type=int,
            help="replies per line per contender (default: 1 on the "
            "embedded model, 5 on a real one)",
        )
        parser.add_argument("--script", help="user lines, one per line (default: the page's)")
        parser.add_argument("--model", default="", help="model for every contender")
        parser.add_argument("--temperature", type=float, default=0.7)
        parser.add_argument("--user", default="local", help="who owns it (made if missing)")
        parser.add_argument("--title", default="")
        parser.add_argument("--json", dest="json_out", help="write the full results here")
        parser.add_argument("--csv", dest="csv_out", help="write one row per reply here")
        parser.add_argument("--figures-csv", dest="figures_out", help="write the figures here")
        parser.add_argument(
            "--retries",
            type=int,
            default=0,
            help="continue contenders that stopped short up to this many times, each retrying "
            "the failed step once (the page's 'Continue stopped contenders'); default 0: a "
            "failure is a result",
        )
        parser.add_argument(
            "--timeout", type=float, default=6 * 3600, help="give up after this many seconds"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            config = endpoint_from_env(os.environ)
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        strategies = parse_strategies(options["strategies"])
        samples = options["samples"]
        if samples is None:
            samples = default_samples(config.embedded)
        if not 1 <= samples <= MAX_SAMPLES:
            raise CommandError(f"--samples takes 1 to {MAX_SAMPLES}")
        if not 0.0 <= options["temperature"] <= 2.0:
            raise CommandError("--temperature takes 0 to 2")
        script = read_script(options["script"]) if options["script"] else list(DEFAULT_SCRIPT)
        self.prepare_database()
        users = get_user_model()
        owner, _ = users.objects.get_or_create(username=options["user"])
        try:
            found = find_character(options["character"], owner)
        except CharacterNotFound as exc:
            raise CommandError(str(exc)) from None
        if not found.sample_lines:
            raise CommandError(f"{found.name} has no sample lines, so style cannot be measured")
        character = character_row(owner, found)
        specs = [ContenderSpec(s, options["model"], options["temperature"]) for s in strategies]
        comparison = create_comparison(
            owner, character, script, specs, samples=samples, title=options["title"]
        )
        model = options["model"] or config.default_model
        kind = "embedded" if config.embedded else "configured"
        self.stdout.write(
            f"comparison #{comparison.pk}: {found.name} ({found.source}), "
            f"{', '.join(strategies)}; {len(script)} lines x {samples} samples; "
            f"model {model} at {config.display_url} ({kind})"
        )
        death = None
        with ExitStack() as stack:
            server = self._ensure_embedded(config, stack) if config.embedded else None
            total = len(script) * samples * len(specs)
            # This process may run beside a server on the same database: another worker's run
            # is dead only once its heartbeat stops, never merely because it is another
            # process's. (Scoped: the setting is left as it was afterwards.)
            stale = settings.RUN_STALE_AFTER or STALE_AFTER_S
            try:
                with override_settings(RUN_STALE_AFTER=stale):
                    asyncio.run(
                        self._play(
                            comparison, total, options["timeout"], max(options["retries"], 0)
                        )
                    )
            except KeyboardInterrupt:
                raise CommandError(
                    f"interrupted; comparison #{comparison.pk} keeps what was played "
                    "(continue it from its page)"
                ) from None
            finally:
                # Read before the stack stops the server: a contender that failed because the
                # model died should say so, not only that nothing answered.
                death = server.death() if server is not None else None
        columns = metrics.columns(comparison)
        figures = results.build(comparison, columns)
        self.stdout.write("")
        for line in table(figures, columns):
            self.stdout.write(line)
        self._write(comparison, columns, figures, options)
        stopped = [c for c in columns if c.status != "done"]
        if stopped:
            died = ""
            if death is not None:
                died = (
                    f"the embedded model server (pid {death.pid}) {death.exit} during the "
                    f"comparison. {death.advice}\nIts output ends with:\n{death.tail}\n"
                )
            raise CommandError(
                died
                + "; ".join(
                    f"{c.contender.letter} {c.contender.strategy} {c.status}: "
                    f"{c.error or 'see its debugger'}"
                    for c in stopped
                )
            )

    async def _play(self, comparison: Comparison, total: int, timeout: float, retries: int) -> None:
        started = time.monotonic()
        await running.start(comparison)
        await self._follow(comparison, total, timeout, started)
        for _ in range(retries):
            stalled = await sync_to_async(_stalled)(comparison)
            if not stalled:
                break
            await running.resume(comparison, stalled)
            await self._follow(comparison, total, timeout, started)
        done = await sync_to_async(_replies_done)(comparison)
        self._progress(done, total, time.monotonic() - started, last=True)

    async def _follow(
        self, comparison: Comparison, total: int, timeout: float, started: float
    ) -> None:
        """Redraw the progress bar until every contender's run has finished."""
        waiting = asyncio.create_task(running.wait(comparison, timeout))
        while not waiting.done():
            done = await sync_to_async(_replies_done)(comparison)
            self._progress(done, total, time.monotonic() - started)
            await asyncio.wait({waiting}, timeout=PROGRESS_EVERY_S)
        try:
            waiting.result()
        except TimeoutError:
            raise CommandError(
                f"gave up after {timeout:.0f} s; comparison #{comparison.pk} keeps what was "
                "played (continue it from its page)"
            ) from None

    def _progress(self, done: int, total: int, seconds: float, *, last: bool = False) -> None:
        filled = int(BAR_WIDTH * done / total) if total else BAR_WIDTH
        bar = "#" * filled + "." * (BAR_WIDTH - filled)
        minutes, secs = divmod(int(seconds), 60)
        text = f"playing [{bar}] {done}/{total} replies  {minutes}:{secs:02d}"
        if self.stderr.isatty():
            self.stderr.write("\r" + text, ending="\n" if last else "")
        elif last or done != self._shown:
            self.stderr.write(text)  # a log, not a terminal: a line per change only
        self._shown = done
        self.stderr.flush()

    def _ensure_embedded(self, config: EndpointConfig, stack: ExitStack) -> EmbeddedServer | None:
        """The embedded server this command started (None: one was already answering)."""
        # As `manage.py llm_check` does: reuse a server that answers, else start one for us.
        from personaweb.llm.embedded import (
            EmbeddedServer,
            EmbeddedServerError,
            EmbeddedUnavailable,
            server_answers,
        )

        if config.base_url and server_answers(config.base_url):
            self.stdout.write(f"embedded model already answering on port {config.embedded_port}")
            return None
        self.stdout.write(f"starting the embedded model on port {config.embedded_port} ...")
        try:
            return stack.enter_context(EmbeddedServer.from_config(config))
        except (EmbeddedUnavailable, EmbeddedServerError) as exc:
            raise CommandError(str(exc)) from None

    def _write(
        self,
        comparison: Comparison,
        columns: list[metrics.Column],
        figures: results.Results,
        options: dict[str, Any],
    ) -> None:
        outputs: list[tuple[str | None, Any]] = [
            (
                options["json_out"],
                lambda: json.dumps(exports.summary(comparison), indent=2, ensure_ascii=False),
            ),
            (
                options["csv_out"],
                lambda: exports.write_csv(
                    exports.reply_rows(comparison, columns), exports.CSV_FIELDS
                ),
            ),
            (
                options["figures_out"],
                lambda: exports.write_csv(
                    exports.figure_rows(comparison, figures), exports.FIGURE_FIELDS
                ),
            ),
        ]
        for path, render in outputs:
            if not path:
                continue
            try:
                Path(path).write_text(render(), encoding="utf-8")
            except OSError as exc:
                raise CommandError(f"cannot write {path}: {exc.strerror or exc}") from None
            self.stdout.write(f"wrote {path}")


def _stalled(comparison: Comparison) -> list[int]:
    """Contenders that stopped short of the script's end (the page's rule for 'Continue')."""
    return [c.contender.pk for c in metrics.columns(comparison) if not c.running and not c.complete]


def _replies_done(comparison: Comparison) -> int:
    """Samples answered so far, every contender (what the progress bar counts). Read without
    the style model: scoring every reply every second would only take time from the model."""
    script = list(comparison.script)
    contenders = comparison.contenders.select_related("session")
    return sum(
        t.done
        for contender in contenders
        for t in metrics.build_column(contender, script, None, "", 0, comparison.samples).replies
    )
