"""A real SMTP server for tests (aiosmtpd on loopback) that keeps what it receives."""

from __future__ import annotations

import email
import email.policy
import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller

from tests.support.servers import free_port

LINK = re.compile(r"https?://[^\s\"'<>]+/sign/[A-Za-z0-9_-]+")


class Mailbox:
    """Messages as the SMTP server got them, parsed; ``refuse`` makes RCPT answer 550."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self.refuse: set[str] = set()
        self._lock = threading.Lock()

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: Any
    ) -> str:
        if address in self.refuse:
            return "550 5.1.1 mailbox unavailable"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        with self._lock:
            self.messages.append(message)  # type: ignore[arg-type]
        return "250 Message accepted"

    def wait_for(
        self, predicate: Callable[[EmailMessage], bool], timeout: float = 15.0
    ) -> EmailMessage:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                for message in self.messages:
                    if predicate(message):
                        return message
            time.sleep(0.05)
        with self._lock:
            seen = [(m["To"], m["Subject"]) for m in self.messages]
        raise AssertionError(f"no such email within {timeout} s; received: {seen}")

    def to(self, address: str, kind: str, timeout: float = 15.0) -> EmailMessage:
        """The first email of ``kind`` (its X-Signbot-Kind) sent to ``address``."""
        return self.wait_for(
            lambda m: address in str(m["To"]) and m.get("X-Signbot-Kind") == kind, timeout
        )


def body_text(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("plain",))
    assert part is not None
    return part.get_content()


def sign_link(message: EmailMessage) -> str:
    found = LINK.search(body_text(message))
    assert found, body_text(message)
    return found.group(0)


@contextmanager
def smtp_server() -> Iterator[tuple[Mailbox, int]]:
    mailbox = Mailbox()
    port = free_port()
    controller = Controller(mailbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield mailbox, port
    finally:
        controller.stop()
