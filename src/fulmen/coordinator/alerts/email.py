"""Alert e-mails, through the SMTP server the operator configures (``FULMEN_SMTP_*``), with
aiosmtplib: asyncio-native, typed, maintained, and the one the Python SMTP ecosystem points
to (the standard library's smtplib would block the event loop).

One connection per message: alerts are rare (at most one per workflow per period), so a
pool would only hold connections that the server times out. Each message's Message-ID is
made from its delivery's id, the same on every retry, so a resend after a coordinator died
mid-send can be recognised. Every failure is an :class:`~fulmen.errors.AlertError` naming
the server (never the password) and what it said.
"""

from __future__ import annotations

from email.message import EmailMessage
from email.utils import formatdate

import aiosmtplib

from fulmen.config import CoordinatorSettings
from fulmen.coordinator.alerts.messages import Message
from fulmen.errors import AlertError
from fulmen.store import ClaimedDelivery

__all__ = ["EmailSender"]


class EmailSender:
    def __init__(self, settings: CoordinatorSettings) -> None:
        self._settings = settings

    def compose(self, delivery: ClaimedDelivery, message: Message) -> EmailMessage:
        mail = EmailMessage()
        mail["From"] = self._settings.smtp_from
        mail["To"] = ", ".join(delivery.recipients)
        mail["Subject"] = message.subject
        mail["Date"] = formatdate(delivery.alert.inserted_at.timestamp(), usegmt=True)
        mail["Message-ID"] = f"<{delivery.id}@fulmen.alerts>"
        mail["X-Fulmen-Alert"] = delivery.alert.id
        mail.set_content(message.text)
        return mail

    async def send(self, delivery: ClaimedDelivery, message: Message) -> None:
        """Raises AlertError: ``smtp_not_configured`` or ``smtp_failed``."""
        settings = self._settings
        if settings.smtp_host is None:
            raise AlertError(
                "no SMTP server is configured: set FULMEN_SMTP_HOST (and FULMEN_SMTP_PORT, "
                "FULMEN_SMTP_FROM…) on the coordinators",
                code="smtp_not_configured",
            )
        where = f"{settings.smtp_host}:{settings.smtp_port}"
        try:
            await aiosmtplib.send(
                self.compose(delivery, message),
                hostname=settings.smtp_host,
                port=settings.smtp_port,
                username=settings.smtp_username,
                password=settings.smtp_password.value if settings.smtp_password else None,
                use_tls=settings.smtp_tls,
                start_tls=settings.smtp_starttls,
                timeout=settings.alert_send_timeout,
            )
        except aiosmtplib.SMTPResponseException as error:
            raise AlertError(
                f"the SMTP server {where} answered {error.code} {error.message}",
                code="smtp_failed",
            ) from error
        except aiosmtplib.SMTPException as error:
            raise AlertError(f"the SMTP server {where}: {error}", code="smtp_failed") from error
        except OSError as error:
            raise AlertError(
                f"the SMTP server {where} cannot be reached: {error.strerror or error}",
                code="smtp_failed",
            ) from error
