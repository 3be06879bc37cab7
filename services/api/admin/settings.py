"""The admin view's settings (``STAGER_ADMIN__...``): who may use it, its limits, and where
RabbitMQ's management API is."""

from __future__ import annotations

from pydantic import BaseModel, Field, SecretStr

from shared.settings import FileSecret


class AdminSettings(BaseModel):
    """Admin and read-only roles: OIDC groups (from ``auth.oidc.groups_claim``) and
    service-account names. Empty lists: nobody has the role."""

    groups: list[str] = Field(
        default_factory=list, description="OIDC groups whose members may view and act"
    )
    readonly_groups: list[str] = Field(
        default_factory=list, description="OIDC groups whose members may only view"
    )
    service_accounts: list[str] = Field(
        default_factory=list, description="service accounts that may view and act"
    )
    readonly_service_accounts: list[str] = Field(
        default_factory=list, description="service accounts that may only view"
    )
    #: What a paused intake's 503 asks clients to wait (Retry-After, seconds).
    paused_retry_after: int = Field(default=300, ge=1, le=86400)
    #: Most jobs one bulk action may touch.
    max_bulk: int = Field(default=1000, ge=1, le=100_000)
    #: Most dead letters one listing or action looks at.
    max_dead_letters: int = Field(default=200, ge=1, le=10_000)
    #: RabbitMQ's management API (``http://127.0.0.1:15672``), for exact unacknowledged
    #: counts in the queues view; empty: not asked (the view estimates them).
    management_url: str = Field(default="", pattern=r"^(https?://\S+)?$")
    #: Its user (with the ``management`` tag); empty: the user of the API's broker URL.
    management_user: str = ""
    #: Its password (``file:`` allowed); empty: the password of the API's broker URL.
    management_password: FileSecret = SecretStr("")
    #: How long one management API request may take (seconds).
    management_timeout: float = Field(default=2.0, gt=0, le=30)
