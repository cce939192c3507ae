"""The browser pages of the authorization endpoint: plain server-rendered HTML.

No template engine and no script: four small pages built from escaped strings. Every
value that reaches the page goes through :func:`html.escape`; the pages are served with a
Content-Security-Policy that forbids scripts, framing and foreign resources.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape

__all__ = ["PAGE_HEADERS", "consent_page", "error_page", "login_page", "otp_page"]

#: Security headers of every page. ``form-action`` is deliberately absent: the consent form's
#: answer is a redirect to the partner, which ``form-action 'self'`` would block in browsers.
PAGE_HEADERS: Mapping[str, str] = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}

_STYLE = """
body{font-family:system-ui,-apple-system,"PingFang SC","Microsoft YaHei",sans-serif;background:#f4f6f8;margin:0}
main{max-width:420px;margin:48px auto;background:#fff;border-radius:12px;padding:28px;box-shadow:0 2px 12px #0001}
h1{font-size:1.3em;margin:0 0 4px}p.sub{color:#667;margin:0 0 20px}
label{display:block;margin:14px 0 6px;font-weight:600}
input[type=tel],input[type=text]{width:100%;box-sizing:border-box;padding:10px;font-size:1.1em;
border:1px solid #ccd;border-radius:8px}
button{margin-top:18px;width:100%;padding:11px;font-size:1em;border:0;border-radius:8px;background:#1769e0;color:#fff}
button.secondary{background:#e8ebef;color:#223}
.error{background:#fdecea;color:#8a1c12;padding:10px;border-radius:8px;margin-bottom:12px}
ul{padding-left:1.2em}li{margin:6px 0}small{color:#667}
"""


def _page(title: str, body: str) -> str:
    return (
        '<!doctype html><html lang="zh-CN"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>{escape(title)}</title><style>{_STYLE}</style></head><body><main>{body}</main></body></html>"
    )


def _error(message: str | None) -> str:
    return f'<div class="error" role="alert">{escape(message)}</div>' if message else ""


def login_page(*, client_name: str, tx: str, action: str, error: str | None = None, phone: str = "") -> str:
    """Step 1: the phone number to send a one-time code to."""
    return _page(
        "登录 OneCity",
        f"<h1>登录城市账号 · Sign in to OneCity</h1>"
        f'<p class="sub">{escape(client_name)} 请求使用您的城市账号登录</p>'
        f"{_error(error)}"
        f'<form method="post" action="{escape(action)}">'
        f'<input type="hidden" name="tx" value="{escape(tx)}">'
        '<label for="phone">手机号 · Mobile number</label>'
        f'<input id="phone" name="phone" type="tel" inputmode="numeric" autocomplete="tel" maxlength="11" '
        f'pattern="1[3-9][0-9]{{9}}" required value="{escape(phone)}">'
        "<button type=submit>发送验证码 · Send code</button></form>",
    )


def otp_page(*, client_name: str, tx: str, action: str, masked_phone: str, error: str | None = None) -> str:
    """Step 2: the one-time code from the SMS."""
    return _page(
        "输入验证码",
        f"<h1>输入验证码 · Enter the code</h1>"
        f'<p class="sub">验证码已发送至 {escape(masked_phone)} · sent to {escape(masked_phone)}</p>'
        f"{_error(error)}"
        f'<form method="post" action="{escape(action)}">'
        f'<input type="hidden" name="tx" value="{escape(tx)}">'
        '<label for="otp">6 位验证码 · 6-digit code</label>'
        '<input id="otp" name="otp" type="text" inputmode="numeric" autocomplete="one-time-code" maxlength="6" '
        'pattern="[0-9]{6}" required>'
        f"<button type=submit>登录 · Sign in</button></form>"
        f"<p><small>{escape(client_name)}</small></p>",
    )


def consent_page(
    *,
    client_name: str,
    tx: str,
    action: str,
    scopes: Sequence[tuple[str, str, str]],
    offer_full_name: bool,
) -> str:
    """Step 3: what the partner asks to see; approve or deny."""
    items = "".join(f"<li>{escape(zh)}<br><small>{escape(en)}</small></li>" for _, en, zh in scopes)
    full_name = (
        '<label><input type="checkbox" name="share_full_name" value="on"> '
        "提供完整姓名（否则仅显示姓氏，如 张*）· Share my full name (otherwise masked)</label>"
        if offer_full_name
        else ""
    )
    return _page(
        "授权确认",
        f"<h1>授权 {escape(client_name)}</h1>"
        f'<p class="sub">{escape(client_name)} 请求获取以下信息 · asks for:</p>'
        f"<ul>{items}</ul>"
        f'<form method="post" action="{escape(action)}">'
        f'<input type="hidden" name="tx" value="{escape(tx)}">{full_name}'
        '<button type=submit name="decision" value="approve">同意 · Allow</button>'
        '<button type=submit name="decision" value="deny" class="secondary">拒绝 · Deny</button>'
        "</form><p><small>您可以随时在城市 App 的“授权管理”中撤回授权。"
        "You can withdraw this at any time in the app.</small></p>",
    )


def error_page(message: str) -> str:
    """An error that cannot be sent back to the partner (unknown client, bad redirect URI)."""
    return _page(
        "无法完成登录",
        "<h1>无法完成登录 · Cannot sign in</h1>"
        f"{_error(message)}"
        "<p><small>请返回合作方网站重新开始。Please go back to the site you came from and try again.</small></p>",
    )
