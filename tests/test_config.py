"""Settings from the environment: a setting that cannot be used stops a command with its message."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    ("setting", "value", "message"),
    [
        ("SYNC_INTERVAL_MINUTES", "abc", "SYNC_INTERVAL_MINUTES must be a whole number, got 'abc'"),
        (
            "STRATLINK_SOURCE",
            "nope",
            "STRATLINK_SOURCE must be one of demo, salesforce, hubspot, file, got 'nope'",
        ),
    ],
)
def test_a_bad_setting_stops_a_command_with_its_message_not_a_traceback(tmp_path, setting, value, message):
    environment = {**os.environ, "DATABASE_URL": f"sqlite:///{tmp_path}/unused.sqlite3", setting: value}

    done = subprocess.run(
        [sys.executable, "-m", "flask", "--app", "app", "job-runs"],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert done.returncode == 1
    assert done.stderr.strip() == f"Error: {message}"
