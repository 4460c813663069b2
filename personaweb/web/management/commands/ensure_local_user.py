"""Make sure a fresh install has an account to log in with.

On the first run (no users at all) this creates one with a random password, writes the
credentials to LOCAL_LOGIN_FILE (mode 600) and prints them. Later runs only remind you where
they are. `make run` calls it before starting the server.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand


def write_private(path: Path, text: str) -> None:
    """Write text to a file only its owner may read (created 600, tightened if it existed)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    os.chmod(path, 0o600)


class Command(BaseCommand):
    help = "Create a local account on first run and print how to log in."

    def add_arguments(self, parser):
        parser.add_argument("--username", default="local")
        parser.add_argument("--url", default="http://127.0.0.1:8000/")
        parser.add_argument(
            "--reset", action="store_true", help="Give the account a new random password."
        )

    def handle(self, *args, username: str, url: str, reset: bool, **options):
        users = get_user_model()
        path = Path(settings.LOCAL_LOGIN_FILE)
        existing = users.objects.filter(username=username).first()
        if existing is None and users.objects.exists() and not reset:
            self.stdout.write("Accounts exist already; log in with yours.")
            return
        if existing is not None and not reset:
            if path.exists():
                self.stdout.write(f"Log in with the account saved in {path}:\n{path.read_text()}")
            else:
                self.stdout.write(
                    f"The account {username!r} exists; `manage.py ensure_local_user --reset` "
                    "gives it a new password."
                )
            return
        password = secrets.token_urlsafe(12)
        if existing is None:
            users.objects.create_superuser(username=username, email="", password=password)
        else:
            existing.set_password(password)
            existing.save(update_fields=["password"])
        write_private(path, f"url: {url}\nusername: {username}\npassword: {password}\n")
        self.stdout.write(
            self.style.SUCCESS(
                f"Log in at {url}\n  username: {username}\n  password: {password}\n"
                f"(saved in {path})"
            )
        )
