"""The README's console commands, run as a user runs them: `persona_chat` in bash, against the
scripted OpenAI-compatible server on loopback, answering its prompts on standard input. Each
test reads what the person would: what was printed, the exit code, the saved tree."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path
from typing import Any

import pytest

from personaweb.characters.sheet import load_bundled
from personaweb.llm.scripted_server import Broken, ScriptedOpenAIServer
from tests.readme.otlp import OtlpReceiver
from tests.readme.readme import block, command
from tests.readme.shell import run, said, user_env
from tests.scripted_replies import dialogue_responder

TABLE = command('.venv/bin/python manage.py persona_chat --character "Sara Wilcox"')
SAVE, REPLAY = (c.text for c in block(".venv/bin/python manage.py persona_chat --hierarchy"))
BUNDLED = [sheet.name for sheet in load_bundled()]
STRATEGIES = ("single", "nested", "linear")


def saved(path: Path) -> dict[str, Any]:
    doc = json.loads(path.read_text(encoding="utf-8"))
    assert doc["format"] == "personaweb.tree/1"
    return doc


def answer(name: str, output: str) -> str | None:
    """The character's line as the console prints it (after a prompt, when input is piped)."""
    found = re.search(rf"(?:^|> ){re.escape(name)}: (.+)$", output, re.M)
    return found[1] if found else None


def with_character(text: str, name: str) -> str:
    return re.sub(r'--character "[^"]+"', f"--character {shlex.quote(name)}", text)


def with_strategy(text: str, strategy: str) -> str:
    return re.sub(r"--strategy \w+", f"--strategy {strategy}", text)


def saving_to(text: str, path: Path) -> str:
    return text.replace("/tmp/jon.json", shlex.quote(str(path)))


# --- every bundled character, every strategy ---------------------------------------------------


@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize("name", BUNDLED)
def test_every_bundled_character_answers_in_every_strategy(env, tmp_path, name, strategy):
    tree = tmp_path / "tree.json"
    text = saving_to(with_strategy(with_character(SAVE, name), strategy), tree)
    result = run(text.replace(" --review", ""), env, stdin="Good evening. Who are you?\nq\n")
    assert result.returncode == 0, said(result)
    assert "Traceback" not in result.stdout, said(result)
    # The character's line, under its name, is the last thing said before the tree is saved.
    line = answer(name, result.stdout)
    assert line and "Good evening. Who are you?" in line, said(result)
    nodes = saved(tree)["nodes"]
    assert saved(tree)["meta"] == {
        "hierarchy": "dialogue",
        "character": name,
        "strategy": strategy,
        "user": "User",
    }
    prompts = [n["call"]["messages"] for n in nodes if n.get("call")]
    assert prompts, "no LLM call was recorded"
    system = prompts[0][0]["content"]
    assert name in system and "{{" not in system  # the card's macros were filled in


# --- review: approve, reject, feedback, edit ------------------------------------------------


def test_the_tables_review_command_takes_approve_reject_feedback_and_edit(env, tmp_path):
    tree = tmp_path / "sara.json"
    answers = [
        "I am Joe. Who are you?",  # the message
        "",  # approve: the orchestrator delegates to the responder
        "r",  # reject the responder's first line
        "be colder",  # feedback to the responder's second take
        "",  # approve the third take
        "",  # approve: the orchestrator delegates to the rewriter
        "e",  # edit the rewriter's line...
        "Leave all the rest to me.",  # ...to this
        "",  # approve the orchestrator's reply
        "q",
    ]
    result = run(f"{TABLE} --save {tree}", env, stdin="\n".join(answers) + "\n")
    assert result.returncode == 0, said(result)
    assert "Sara Wilcox (dialogue, bundled sheet, review mode" in result.stdout
    assert "#2 orchestrator -> delegate to responder: I am Joe. Who are you?" in result.stdout
    assert "Take 3, as you asked (be colder): who asks?" in result.stdout, said(result)
    assert answer("Sara Wilcox", result.stdout) == "Leave all the rest to me.", said(result)
    nodes = saved(tree)["nodes"]
    by_status = {(n["kind"], n["status"]) for n in nodes}
    assert ("proposal", "rejected") in by_status
    feedback = [n for n in nodes if n["kind"] == "feedback"]
    assert [n["content"] for n in feedback] == ["be colder"]
    edits = [n for n in nodes if n["kind"] == "edit"]
    assert [(e["persona"], e["content"]) for e in edits] == [
        ("orchestrator/style_rewriter", "Leave all the rest to me.")
    ]


def test_save_then_replay_from_a_middle_step_with_feedback(env, tmp_path):
    tree = tmp_path / "jon.json"
    first = run(saving_to(SAVE, tree), env, stdin="I am Joe. Who are you?\n" + "\n" * 6 + "q\n")
    assert first.returncode == 0, said(first)
    before = saved(tree)["nodes"]
    step7 = next(n for n in before if n["seq"] == 7)
    assert step7["persona"] == "orchestrator/style_rewriter", "the README's #7 is the rewriter"

    again = run(saving_to(REPLAY, tree), env, stdin="\n" * 4 + "q\n")
    assert again.returncode == 0, said(again)
    assert "replaying from #7 orchestrator/style_rewriter -> reply" in again.stdout
    after = saved(tree)["nodes"]
    assert {n["id"]: n for n in after}.keys() >= {n["id"] for n in before}  # nothing lost
    feedback = [n for n in after if n["kind"] == "feedback"]
    assert [(f["content"], f["parent_id"]) for f in feedback] == [("be ruder", step7["id"])]
    # The rewriter proposed again below the feedback, and the turn ended with Jon's line.
    below = [n for n in after if n["parent_id"] == feedback[0]["id"]]
    assert below and below[0]["persona"] == "orchestrator/style_rewriter"
    assert answer("Jon Johns", again.stdout), said(again)


# --- where a character comes from -----------------------------------------------------------

CARD = {
    "spec": "chara_card_v2",
    "spec_version": "2.0",
    "data": {
        "name": "Wren Alder",
        "description": (
            "{{char}} keeps the lighthouse on Gannet Rock and has not had a visitor in a year.\n"
            "<START>\n{{user}}: Is the light still lit?\n"
            "{{char}}: *taps the glass* Every night, whether anyone sails or not."
        ),
        "personality": "wry, watchful, lonely",
        "scenario": "{{user}} rows up to the rock in a storm.",
        "first_mes": (
            "*The door creaks open and a lantern swings into your face.* Well now. "
            "Nobody rows out here for the view, {{user}}. *She steps aside.* Get in."
        ),
        "mes_example": "<START>\n{{user}}: Hello?\n{{char}}: *squints* Who's asking?",
        "creator_notes": "",
        "system_prompt": "",
        "post_history_instructions": "",
        "alternate_greetings": [],
        "tags": ["lighthouse"],
        "creator": "readme tests",
        "character_version": "1",
        "extensions": {},
    },
}


def test_a_card_file_is_a_character_with_the_persons_name(env, tmp_path):
    card = tmp_path / "wren.json"
    card.write_text(json.dumps(CARD), encoding="utf-8")
    tree = tmp_path / "tree.json"
    text = saving_to(with_strategy(with_character(SAVE, str(card)), "single"), tree)
    result = run(f"{text} --user-name Joe".replace(" --review", ""), env, stdin="Hello?\nq\n")
    assert result.returncode == 0, said(result)
    assert "Wren Alder (dialogue, card wren.json" in result.stdout
    call = next(n["call"] for n in saved(tree)["nodes"] if n.get("call"))
    system = call["messages"][0]["content"]
    assert "Wren Alder keeps the lighthouse" in system
    assert "You are talking with Joe" in system and "Joe rows up to the rock" in system
    assert "{{" not in system
    assert saved(tree)["meta"]["user"] == "Joe"


def test_a_character_from_the_database_is_its_owners(env, tmp_path):
    setup = (
        "from django.contrib.auth.models import User; "
        "from personaweb.web.models import Character; "
        "u = User.objects.create_user('maya', first_name='Maya'); "
        "Character.objects.create(owner=u, name='Ivo Brand', slug='ivo_brand', data={"
        "'name': 'Ivo Brand', 'description': 'A ferryman who talks to {{user}} in riddles.', "
        "'sample_lines': ['Cross or do not, the river waits.']})"
    )
    migrate = run(".venv/bin/python manage.py migrate --noinput", env)
    assert migrate.returncode == 0, said(migrate)
    made = run(f".venv/bin/python manage.py shell -c {shlex.quote(setup)}", env)
    assert made.returncode == 0, said(made)
    tree = tmp_path / "tree.json"
    text = saving_to(with_character(SAVE, "ivo brand"), tree).replace(" --review", "")
    result = run(text, env, stdin="Will you take me across?\nq\n")
    assert result.returncode == 0, said(result)
    assert "Ivo Brand (dialogue, maya's character #" in result.stdout, said(result)
    calls = [n["call"] for n in saved(tree)["nodes"] if n.get("call")]
    systems = [c["messages"][0]["content"] for c in calls]
    assert any("A ferryman who talks to Maya in riddles." in s for s in systems)
    assert answer("Ivo Brand", result.stdout), said(result)


# --- what goes wrong ------------------------------------------------------------------------


def test_a_stream_cut_mid_reply_becomes_a_failed_step(tmp_path):
    def cut_the_responder(body: dict[str, Any]) -> Any:
        text = dialogue_responder(body)
        if "Stay in character" in body["messages"][0]["content"]:
            return Broken(text, cut_after=2, cut="reset")
        return text

    with ScriptedOpenAIServer(dialect="openai", responder=cut_the_responder) as server:
        env = user_env(tmp_path, server.base_url)
        tree = tmp_path / "tree.json"
        text = saving_to(SAVE, tree).replace(" --review", "")
        result = run(text, env, stdin="Hello\nn\nq\n")
    assert result.returncode == 0, said(result)
    assert re.search(r"#\d+ orchestrator/responder FAILED: .*", result.stdout), said(result)
    assert "retry? [Y/n]" in result.stdout
    errors = [n for n in saved(tree)["nodes"] if n["kind"] == "error"]
    assert len(errors) == 1 and errors[0]["persona"] == "orchestrator/responder"


@pytest.mark.parametrize(
    ("args", "stdin", "says"),
    [
        ('--character "Nobody Atall"', "", "no character 'Nobody Atall'"),
        ("--strategy sideways", "", "invalid choice: 'sideways'"),
        ("--replay {bad} --from '#1'", "", "not JSON"),
        ("--replay {newer} --from '#1'", "", "written by a newer PersonaWeb"),
        ("--replay {tree} --from '#999' --feedback x", "", "no step '#999' in the saved tree"),
        ("--replay {tree}", "", "--replay needs --from STEP"),
    ],
    ids=["unknown-character", "unknown-strategy", "not-json", "newer", "no-step", "no-from"],
)
def test_bad_input_gets_a_clear_message_and_a_failing_exit(env, tmp_path, args, stdin, says):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json", encoding="utf-8")
    newer = tmp_path / "newer.json"
    newer.write_text(json.dumps({"format": "personaweb.tree/9", "nodes": []}), encoding="utf-8")
    tree = tmp_path / "tree.json"
    tree.write_text(json.dumps({"format": "personaweb.tree/1", "nodes": []}), encoding="utf-8")
    filled = args.format(bad=bad, newer=newer, tree=tree)
    result = run(f".venv/bin/python manage.py persona_chat {filled}", env, stdin=stdin)
    assert result.returncode != 0, said(result)
    assert says in result.stdout, said(result)
    assert "Traceback" not in result.stdout, said(result)


def test_end_of_input_in_a_review_keeps_what_happened(env, tmp_path):
    tree = tmp_path / "tree.json"
    result = run(f"{TABLE} --save {tree}", env, stdin="I am Joe.\n\n")  # ends mid-review
    assert result.returncode == 0, said(result)
    assert "end of input: the proposal waits for review" in result.stdout, said(result)
    nodes = saved(tree)["nodes"]
    assert nodes[-1]["status"] == "proposed" and nodes[-1]["persona"] == "orchestrator/responder"


# --- traces ---------------------------------------------------------------------------------


def test_a_console_run_sends_its_traces_when_an_endpoint_is_set(env, tmp_path):
    with OtlpReceiver() as receiver:
        traced = {**env, "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url}
        text = saving_to(SAVE, tmp_path / "tree.json").replace(" --review", "")
        result = run(text, traced, stdin="Who keeps the ledger?\nq\n")
        assert result.returncode == 0, said(result)
        spans = receiver.spans()  # the process has ended: whatever it sent has arrived
    names = {span["name"] for span in spans}
    assert {"invoke_agent Jon Johns", "invoke_agent responder", "invoke_agent style_rewriter"} <= (
        names
    ), names
    chats = [s for s in spans if s["name"].startswith("chat ")]
    assert len(chats) == 5, names  # nested: five LLM calls a reply
    assert all(s["attributes"]["gen_ai.response.model"] == "scripted-model" for s in chats)
    assert all(s["attributes"]["gen_ai.usage.output_tokens"] > 0 for s in chats)
    assert {s["service"] for s in spans} == {"personaweb"}
