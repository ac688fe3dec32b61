"""The router's settings."""

from __future__ import annotations

from pydantic import Field, SecretStr, field_validator

from services.router.smtp import SmtpServer
from services.runtime.settings import ServiceSettings, Tokens, split_tokens


def parse_account_tokens(value: str) -> dict[str, str]:
    """`acme:tok1, globex:tok2` → {"tok1": "acme", "tok2": "globex"}; ValueError names the entry
    that is wrong, by position (never the token)."""
    scoped: dict[str, str] = {}
    for position, entry in enumerate(split_tokens(value), start=1):
        account, _, token = entry.partition(":")
        if not account.strip() or not token.strip():
            raise ValueError(f"entry {position} is not account:token")
        scoped[token.strip()] = account.strip()
    return scoped


class RouterSettings(ServiceSettings):
    port: int = Field(default=8001, ge=0, le=65535)
    admin_token: Tokens = Field(description="Bearer tokens of the webhooks API, comma-separated.")

    @property
    def admin_tokens(self) -> tuple[str, ...]:
        return split_tokens(self.admin_token.get_secret_value())

    # Tokens scoped to an account, `account:token`, comma-separated: such a token sees and changes
    # only its account's webhooks, and creates webhooks of that account only.
    account_tokens: SecretStr | None = None

    @field_validator("account_tokens")
    @classmethod
    def _account_tokens_read(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            parse_account_tokens(value.get_secret_value())  # ValueError says which entry
        return value

    @property
    def scoped_tokens(self) -> dict[str, str]:
        """token → account."""
        if self.account_tokens is None:
            return {}
        return parse_account_tokens(self.account_tokens.get_secret_value())

    # The delivery history's SQLite file: this router's projection of the delivery log, read on
    # from where it stopped at the next start. Empty: `var/<prefix>-history.sqlite3` under the
    # working directory; `:memory:` rebuilds it from the whole log at every start. Give each
    # router on one machine a file of its own.
    history_path: str = ""
    # Deliveries whose last attempt is older than this leave the history (the delivery log keeps
    # its records 7 days).
    history_retention_s: float = Field(default=7 * 24 * 3600.0, gt=0)

    @property
    def history_file(self) -> str:
        return self.history_path or f"var/{self.prefix}-history.sqlite3"

    # How long a rotated-out signing secret keeps signing beside the new one.
    secret_grace_s: float = Field(default=24 * 3600.0, ge=0)
    # Disable a webhook that has failed continuously this long and at least this many attempts
    # (both must hold): 5 days as Svix, 20 attempts as Xurrent.
    disable_after_s: float = Field(default=5 * 24 * 3600.0, gt=0)
    disable_after_failures: int = Field(default=20, ge=1)
    # How often the endpoint-health projection is checkpointed to the health stream.
    health_checkpoint_s: float = Field(default=60.0, gt=0)
    # How often the depth and consumer count of every queue are read from the broker for /metrics.
    queue_metrics_s: float = Field(default=15.0, gt=0)
    # Failure mail: `smtp://[user:password@]host[:port][?starttls=true]` or `smtps://…`; none, no
    # mail. At most one digest per webhook every `mail_digest_s`; the first notice of a digest
    # waits `mail_gather_s` for others. Notices wait unacked meanwhile, so the digest stays below
    # RabbitMQ's consumer_timeout (30 min by default).
    smtp_url: SecretStr | None = None
    mail_from: str = "hookline@localhost"
    mail_digest_s: float = Field(default=600.0, gt=0, le=1500)
    mail_gather_s: float = Field(default=30.0, ge=0, le=300)

    @field_validator("smtp_url")
    @classmethod
    def _smtp_url_parses(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and value.get_secret_value():
            SmtpServer.from_url(value.get_secret_value())  # raises ValueError saying what is wrong
        return value
