"""Producers that other domains reach through hooks (they cannot import the message centre):
identity's security notices (new devices, binding attempts, identity corrections) and codes'
health status decisions."""

from __future__ import annotations

from typing import Final

from core.db import Connection
from identity import SecurityNotice
from messages.repository import MessagesRepository
from messages.service import MessageCentre

__all__ = ["CodeStatusMessages", "SecurityMessages"]

_TEXT: Final = {
    "new_device": (
        "新设备登录提醒",
        "您的账号在新设备“{device}”上登录。如非本人操作，请立即在“设备管理”中下线该设备。",
    ),
    "binding_attempt": ("实名信息安全提醒", "有人尝试用您的身份信息在另一个账号实名认证，已被拒绝。"),
    "identity_corrected": (
        "实名信息已更正",
        "您账号的实名信息已更正，原有的授权和码已失效。如非本人操作，请联系客服。",
    ),
}


class SecurityMessages:
    """``security`` messages from identity's hooks (always in the inbox, always pushed)."""

    def __init__(self, centre: MessageCentre) -> None:
        self.centre = centre

    async def notice(self, conn: Connection | None, notice: SecurityNotice) -> None:
        """Add the message in the event's transaction (``conn``) or, without one, on its own."""
        title, body = _TEXT[notice.kind]
        # The device name is the citizen's own label for their phone; cut so a crafted one
        # cannot fill a lock screen.
        text = body.format(device=(notice.device_name or "")[:40])
        key = f"security:{notice.event}"
        if conn is None:
            await self.centre.post(
                account_id=notice.account_id, category="security", title=title, body=text, dedupe_key=key
            )
        else:
            await self.centre.produce(
                conn, account_id=notice.account_id, category="security", title=title, body=text, dedupe_key=key
            )

    async def committed(self, account_id: str) -> None:
        """After the event's commit: wake the account's streams."""
        await self.centre.announce(account_id)


_CODE_TEXT: Final = {"G": "绿码", "Y": "黄码", "R": "红码"}


class CodeStatusMessages:
    """A health code's status *change* as a ``code`` message (and the SSE ``code_status``
    event that goes with it), from codes' status hook: decided on any read and by overrides.

    Args:
        centre: Produces the message.
        repository: The message centre's SQL (each code's last known status).
    """

    def __init__(self, centre: MessageCentre, repository: MessagesRepository) -> None:
        self.centre = centre
        self._repository = repository

    async def observed(self, account_id: str, code_type: str, status: str) -> None:
        """A status was decided. The first one known is the baseline (no message); each
        different one after it is one message, however many workers decide it at once."""
        async with self._repository.transaction() as tx:
            version = await self._repository.change_code_status(tx, account_id, code_type, status)
            if version is None:
                return
            await self.centre.produce(
                tx,
                account_id=account_id,
                category="code",
                title="健康码状态变化",
                body=f"您的健康码已变为{_CODE_TEXT.get(status, status)}，请打开 OneCity 查看。",
                dedupe_key=f"code:{code_type}:{version}",
                link=("code", code_type),
                data={"type": code_type, "status": status},
            )
        await self.centre.announce(account_id)
