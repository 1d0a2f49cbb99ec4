"""Email over plain SMTP (smtplib): one connection per message, Message-ID from the key.

The message is ``engine.channels.files.email_message`` (the same as the file outbox writes), so
its ``Message-ID`` is ``<idempotency-key@hourglass>``: a message sent twice (the crash window
between the server's acceptance and the recorded delivery) carries the same Message-ID, which
mail stores and clients use to collapse duplicates.
"""

from __future__ import annotations

import smtplib
import ssl
from email.utils import formatdate

from engine.channels.base import DeliveryError
from engine.channels.files import SENDER, email_message
from engine.core.effects import ActionEffect
from engine.settings import Settings

#: Seconds any one SMTP operation may block (connect, each command, the data).
SMTP_TIMEOUT_S = 30.0


class SmtpChannel:
    """Sends ``email`` actions through one SMTP server (optionally STARTTLS and login)."""

    def __init__(
        self,
        host: str,
        port: int = 25,
        *,
        sender: str = SENDER,
        username: str | None = None,
        password: str | None = None,
        starttls: bool = False,
        timeout: float = SMTP_TIMEOUT_S,
    ) -> None:
        self.host = host
        self.port = port
        self.sender = sender
        self.username = username
        self.password = password
        self.starttls = starttls
        self.timeout = timeout

    @classmethod
    def from_settings(cls, config: Settings) -> SmtpChannel:
        """The channel ``HOURGLASS_SMTP_*`` and ``HOURGLASS_MAIL_FROM`` describe."""
        if config.smtp_host is None:
            raise ValueError("HOURGLASS_SMTP_HOST is not set")
        return cls(
            config.smtp_host,
            config.smtp_port,
            sender=config.mail_from,
            username=config.smtp_username,
            password=config.smtp_password,
            starttls=config.smtp_starttls,
        )

    def deliver(self, action: ActionEffect) -> str:
        """Send the email; the receipt names the server and the Message-ID."""
        message = email_message(action, self.sender)
        if "Date" not in message:
            message["Date"] = formatdate(action.at, usegmt=True)
        try:
            with smtplib.SMTP(self.host, self.port, timeout=self.timeout) as smtp:
                if self.starttls:
                    smtp.starttls(context=ssl.create_default_context())
                if self.username:
                    smtp.login(self.username, self.password or "")
                smtp.send_message(message)
        except smtplib.SMTPRecipientsRefused as error:
            codes = [code for code, _ in error.recipients.values()]
            raise DeliveryError(
                f"SMTP refused the recipient: {error.recipients}",
                retryable=any(400 <= code < 500 for code in codes),
            ) from error
        except smtplib.SMTPResponseException as error:
            raise DeliveryError(
                f"SMTP {error.smtp_code}: {error.smtp_error!r}",
                retryable=error.smtp_code < 500,
            ) from error
        except ssl.SSLCertVerificationError as error:
            raise DeliveryError(f"SMTP {self.host}: {error}", retryable=False) from error
        except smtplib.SMTPNotSupportedError as error:
            raise DeliveryError(f"SMTP server: {error}", retryable=False) from error
        except (smtplib.SMTPException, OSError) as error:
            raise DeliveryError(f"SMTP {self.host}:{self.port}: {error!r}") from error
        return f"smtp {self.host}:{self.port} {message['Message-ID']}"
