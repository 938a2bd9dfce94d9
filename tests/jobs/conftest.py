"""Fixtures for the job tests: a real SMTP server on 127.0.0.1 that keeps what it receives."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

import pytest
from aiosmtpd.controller import Controller


@dataclass
class Received:
    """One message as the server got it: the envelope and the parsed message."""

    mail_from: str
    recipients: list[str]
    message: EmailMessage

    def part(self, content_type: str) -> str:
        body = self.message.get_body(preferencelist=(content_type.split("/")[1],))
        assert body is not None and body.get_content_type() == content_type
        return body.get_content()


@dataclass
class Inbox:
    """An aiosmtpd handler that stores every message."""

    messages: list[Received] = field(default_factory=list)
    # Addresses whose messages the server turns away for now, as a throttling server does.
    refuse: set[str] = field(default_factory=set)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 (aiosmtpd's name)
        if self.refuse & set(envelope.rcpt_tos):
            return "451 4.7.1 Too many messages, try again later"
        parsed = message_from_bytes(envelope.content, policy=policy.default)
        self.messages.append(Received(envelope.mail_from, list(envelope.rcpt_tos), parsed))  # type: ignore[arg-type]
        return "250 Message accepted for delivery"

    def to(self, address: str) -> list[Received]:
        return [received for received in self.messages if address in received.recipients]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def smtp_server(app: Any) -> Iterator[Inbox]:
    """Start a local SMTP server and point the app's SMTP settings at it."""
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=_free_port())
    controller.start()
    app.config.update(
        SMTP_HOST="127.0.0.1",
        SMTP_PORT=controller.port,
        SMTP_STARTTLS=False,
        SMTP_USERNAME="",
        MAIL_FROM="StratLink <review@stratlink.test>",
        STRATLINK_BASE_URL="https://stratlink.example.com",
    )
    try:
        yield inbox
    finally:
        controller.stop()
