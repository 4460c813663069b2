"""The README's other commands, run as a user runs them (in bash, from the repository's root):
`llm_check`, `compare_strategies`, `style_score`, `ensure_local_user`, `check --deploy`, and the
make targets the suite cannot run inside itself, checked for what they would run."""

from __future__ import annotations

import csv
import json
import re
import shlex

import pytest

from personaweb.llm.scripted_server import ScriptedOpenAIServer
from tests.readme.readme import command, commands
from tests.readme.shell import REPO, run, said, user_env

# --- llm_check ------------------------------------------------------------------------------

LLM_CHECK = command(".venv/bin/python manage.py llm_check")


def test_llm_check_reports_the_configured_endpoint(env, llm):
    result = run(LLM_CHECK, env)
    assert result.returncode == 0, said(result)
    out = result.stdout
    assert f"endpoint: {llm.base_url} (configured)" in out
    assert re.search(r"stream:\s+ok, \d+ chunks", out), said(result)
    assert re.search(r"latency [\d.]+ s, \d+ completion tokens, [\d.]+ tokens/s", out)
    assert re.search(r"schema:\s+ok", out), said(result)


def test_llm_check_fails_plainly_when_the_structured_output_does_not_validate(tmp_path):
    with ScriptedOpenAIServer(dialect="openai", responder=lambda _body: "not json") as server:
        result = run(LLM_CHECK, user_env(tmp_path, server.base_url))
    assert result.returncode == 1, said(result)
    assert "schema:   FAILED, did not validate: invalid JSON" in result.stdout
    assert "Traceback" not in result.stdout


@pytest.mark.embedded
def test_llm_check_with_nothing_configured_uses_the_embedded_model(tmp_path, embedded_server):
    env = user_env(tmp_path, PERSONAWEB_EMBEDDED_PORT=str(embedded_server.port))
    result = run(LLM_CHECK, env, timeout_s=300)
    assert result.returncode == 0, said(result)
    assert f"endpoint: {embedded_server.base_url}" in result.stdout, said(result)
    assert re.search(r"stream:\s+ok", result.stdout), said(result)


# --- compare_strategies ---------------------------------------------------------------------

COMPARE = command(".venv/bin/python manage.py compare_strategies --character")
COMPARE_REAL = command("OPENAI_API_KEY=sk-... PERSONAWEB_MODEL=gpt-4o-mini .venv/bin/python")
SAMPLES = re.compile(r"--samples \d+")


def test_compare_strategies_prints_the_figures_of_each_strategy(env):
    # Two samples a line instead of eight: the same code, a quarter of the replies.
    result = run(SAMPLES.sub("--samples 2", COMPARE), env, timeout_s=300)
    assert result.returncode == 0, said(result)
    out = result.stdout
    for row in ("A single", "B nested", "C linear"):
        assert re.search(rf"^{row}\s+[\d.]+ \(", out, re.M), said(result)
    assert "over 5 lines x 2 samples" in out, said(result)
    assert re.search(r"^nested scores [\d.]+ (higher|lower) than single", out, re.M)


def test_compare_strategies_on_a_real_model_writes_its_files(tmp_path, llm):
    env = user_env(tmp_path)
    env["OPENAI_BASE_URL"] = llm.base_url  # the README's OpenAI, on loopback
    text = SAMPLES.sub("--samples 1", COMPARE_REAL)
    text = text.replace("jon.json", shlex.quote(str(tmp_path / "jon.json")))
    text = text.replace("jon-figures.csv", shlex.quote(str(tmp_path / "jon-figures.csv")))
    before = len(llm.requests)
    result = run(text, env, timeout_s=300)
    assert result.returncode == 0, said(result)
    assert {r["model"] for r in llm.requests[before:]} == {"gpt-4o-mini"}
    results = json.loads((tmp_path / "jon.json").read_text(encoding="utf-8"))
    assert results, "the JSON results are empty"
    with (tmp_path / "jon-figures.csv").open(encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    strategies = {value for row in rows for value in row.values()}
    assert {"single", "nested", "linear"} <= strategies, rows[:3]


def test_compare_strategies_names_an_unknown_character(env):
    result = run(COMPARE.replace('"Jon Johns"', '"Nobody Atall"'), env)
    assert result.returncode == 1, said(result)
    assert "Nobody Atall" in result.stdout and "Traceback" not in result.stdout


# --- style_score ----------------------------------------------------------------------------

STYLE = command(".venv/bin/python manage.py style_score")


def test_style_score_scores_each_line_of_a_file(env, tmp_path):
    replies = tmp_path / "replies.txt"
    replies.write_text(
        "Leave all the rest to me, my lord; I will see it done.\nlol ok sure whatever\n",
        encoding="utf-8",
    )
    result = run(STYLE.replace("replies.txt", shlex.quote(str(replies))), env)
    assert result.returncode == 0, said(result)
    scores = [float(s) for s in re.findall(r"score (\d\.\d\d)", result.stdout)]
    assert len(scores) == 3, said(result)  # each line, then the mean
    assert scores[0] > scores[1], "Sara's own register scores above chat slang"
    assert re.search(r"^mean: score \d\.\d\d, distance \d\.\d\d$", result.stdout, re.M)


def test_style_score_names_a_missing_file(env, tmp_path):
    result = run(STYLE.replace("replies.txt", str(tmp_path / "none.txt")), env)
    assert result.returncode == 1, said(result)
    assert "none.txt" in result.stdout and "Traceback" not in result.stdout


# --- ensure_local_user and check --deploy -----------------------------------------------------


def test_ensure_local_user_makes_an_account_once_and_resets_it(env, tmp_path):
    # `make run` calls it on every start; the README says how to reset the password.
    reset = command(".venv/bin/python manage.py ensure_local_user --reset")
    first_run = reset.replace(" --reset", "")
    assert run(".venv/bin/python manage.py migrate --noinput", env).returncode == 0
    first = run(first_run, env)
    assert first.returncode == 0, said(first)
    login = (tmp_path / "login").read_text(encoding="utf-8")
    password = re.search(r"^password: (\S+)$", login, re.M)
    assert password and password[1] in first.stdout, said(first)
    assert oct((tmp_path / "login").stat().st_mode & 0o777) == "0o600"
    again = run(first_run, env)
    assert "Log in with the account saved in" in again.stdout and password[1] in again.stdout
    renewed = run(reset, env)
    assert renewed.returncode == 0, said(renewed)
    new = re.search(r"^password: (\S+)$", (tmp_path / "login").read_text(), re.M)
    assert new and new[1] != password[1]


def test_check_deploy_reports_no_issues_with_the_production_settings(env):
    production = {
        "PERSONAWEB_SECRET_KEY": "x" * 50 + "-production-key",
        "PERSONAWEB_ALLOWED_HOSTS": "personaweb.example.org",
        "PERSONAWEB_CSRF_TRUSTED_ORIGINS": "https://personaweb.example.org",
        "PERSONAWEB_SECURE_COOKIES": "1",
        "PERSONAWEB_SSL_REDIRECT": "1",
        "PERSONAWEB_HSTS_SECONDS": "3600",
        "PERSONAWEB_HSTS_INCLUDE_SUBDOMAINS": "1",
        "PERSONAWEB_HSTS_PRELOAD": "1",
    }
    for name in production:
        assert f"`{name}" in README_TEXT, f"the README no longer names {name}"
    result = run(command(".venv/bin/python manage.py check --deploy"), {**env, **production})
    assert result.returncode == 0, said(result)
    assert "System check identified no issues" in result.stdout, said(result)
    # Without the subdomain and preload settings, it names those two, as the README says.
    partial = {k: v for k, v in production.items() if "SUBDOMAINS" not in k and "PRELOAD" not in k}
    left = run(command(".venv/bin/python manage.py check --deploy"), {**env, **partial})
    assert set(re.findall(r"security\.W\d+", left.stdout)) == {"security.W005", "security.W021"}
    # Without any, it names what is missing.
    missing = run(command(".venv/bin/python manage.py check --deploy"), env)
    assert "security.W004" in missing.stdout, said(missing)


# --- make targets the suite cannot run inside itself -------------------------------------------

README_TEXT = (REPO / "README.md").read_text(encoding="utf-8")


def dry_run(target: str) -> str:
    result = run(f"make -n {target}", {"PATH": "/usr/bin:/bin", "HOME": "/tmp"})
    assert result.returncode == 0, said(result)
    return result.stdout


def test_make_test_runs_lint_types_and_the_whole_suite():
    assert command("make test") == "make test"
    steps = dry_run("test")
    assert "ruff check" in steps and "mypy personaweb" in steps
    pytest_line = next(line for line in steps.splitlines() if "-m pytest" in line)
    assert " -m " not in pytest_line.split("-m pytest", 1)[1], "make test deselects nothing"
    assert (REPO / ".ci" / "run").read_text().strip().endswith("make test")


def test_make_check_is_the_quick_lane_without_embedded_browser_and_scaleout():
    assert command("make check") == "make check"
    steps = dry_run("check")
    assert "not embedded and not browser and not scaleout" in steps


def test_make_bench_runs_every_benchmark_there_is():
    assert command("make bench") == "make bench"
    ran = set(re.findall(r"bench/(bench_\w+\.py)", dry_run("bench")))
    there = {p.name for p in (REPO / "bench").glob("bench_*.py")}
    assert ran == there


def test_make_screenshot_names_a_test_that_exists():
    assert command("make screenshot") == "make screenshot"
    steps = dry_run("screenshot")
    found = re.search(r"(tests/\S+\.py) -k (\w+)", steps)
    assert found, steps
    assert f"def {found[2]}(" in (REPO / found[1]).read_text(encoding="utf-8")


def test_the_readme_commands_are_found():
    # A guard on the parser itself: the table and the blocks are both read.
    shown = {c.text for c in commands()}
    assert "make run" in shown and LLM_CHECK in shown and STYLE in shown
