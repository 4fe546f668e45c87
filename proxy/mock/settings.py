"""Fixed demo identities and the knobs of one mock Graph instance."""

from __future__ import annotations

from dataclasses import dataclass

MOCK_TENANT_ID = "6f1c3a52-8d4e-4b7a-9c1f-2e5d7a9b0c13"
MOCK_CLIENT_ID = "0b9e2c7d-4f61-4a3e-8b5d-9c2a1e7f6d48"
# Deliberately self-describing: this value must never look like a real credential.
MOCK_CLIENT_SECRET = "mock-graph-demo-secret-not-a-real-credential"  # noqa: S105
MOCK_DOMAIN = "contoso.example"
# The tenant id in the tokens of personal Microsoft accounts (outlook.com, hotmail.com…).
PERSONAL_ACCOUNTS_TENANT_ID = "9188040d-6c67-4c5b-b112-36a304b66dad"
CANARY_PREFIX = "CANARY"

# The environment variable the demo output suggests for the client secret.
CLIENT_SECRET_ENV_VAR = "FREEBUSY_PROXY_CLIENT_SECRET"  # noqa: S105


@dataclass(frozen=True, kw_only=True)
class MockSettings:
    """Everything that shapes one mock: the organisation, identities, tokens and limits."""

    org_size: int = 40
    seed: int = 1
    token_lifetime_s: int = 3599
    app_roles: tuple[str, ...] = ("Calendars.ReadBasic",)
    tenant_id: str = MOCK_TENANT_ID
    client_id: str = MOCK_CLIENT_ID
    client_secret: str = MOCK_CLIENT_SECRET
    mailbox_concurrency_limit: int = 4
    mailbox_rate_limit: int = 10_000
    """Requests per mailbox per ten minutes, as Outlook counts them."""
    admins: tuple[str, ...] = (f"megan.bowen@{MOCK_DOMAIN}",)
    """People who hold a directory admin role (``wids`` claim); they may consent for everyone."""
    extra_delegated_scopes: tuple[str, ...] = ()
    """Scopes every new delegated consent also grants (an over-privileged app registration)."""
    withheld_delegated_scopes: tuple[str, ...] = ()
    """Scopes a new delegated consent leaves out though asked for (``offline_access``, say,
    when the tenant-wide consent an admin gave lacks it): tokens then carry less."""
    outside_accounts: tuple[tuple[str, str], ...] = ()
    """(address, home tenant id) of accounts from outside the organisation, offered on the
    sign-in page: a personal Microsoft account (``PERSONAL_ACCOUNTS_TENANT_ID``) or a person of
    another organisation. Their tokens carry their home tenant, as a multi-tenant authority
    issues them; the mock does not refuse them itself, so the client's own checks must."""
    single_use_refresh_tokens: bool = False
    """Each refresh token is redeemed once: the answer carries its successor and the old one
    is refused with invalid_grant from then on (rotation, as some providers and policies
    enforce). Two processes refreshing one connection at once then show the race."""
    device_code_lifetime_s: int = 900
    device_poll_interval_s: int = 5
    browser_url: str | None = None
    """``https://host:port`` where a browser reaches the mock, when that differs from where
    clients reach it (docker compose: the proxy says ``mock-graph:8443``, the host's browser
    ``localhost:8443``). The sign-in and device-login pages are announced there."""

    def __post_init__(self) -> None:
        if self.org_size < 1:
            raise ValueError("org_size must be at least 1")
        if self.mailbox_concurrency_limit < 1 or self.mailbox_rate_limit < 1:
            raise ValueError("mailbox limits must be positive")
        if any(tenant == self.tenant_id for _, tenant in self.outside_accounts):
            raise ValueError("outside accounts must live in another tenant")
        if self.browser_url is not None and not self.browser_url.startswith("https://"):
            raise ValueError("browser_url must be an https:// URL")
