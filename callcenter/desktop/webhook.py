"""The outbound screen-pop webhook, for sites that pop their own CRM.

Each pop is POSTed as JSON to ``pop_webhook_url`` with ``X-Callcenter-Event: screen_pop`` and, when
``pop_webhook_secret`` is set, ``X-Callcenter-Signature: sha256=<hex HMAC of the body>`` so the
receiver can tell it came from us. Sent from a worker thread with a short timeout; a receiver that
is down or slow is logged and recorded (``pop_webhook_failed``), never retried into a call's way.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import urllib.error
import urllib.request

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Callcenter-Signature"


def signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class PopWebhook:
    def __init__(self, url: str, secret: str | None, timeout: float):
        self.url = url
        self.secret = secret
        self.timeout = timeout

    def _post(self, body: bytes, event: str) -> int:
        headers = {"content-type": "application/json", "x-callcenter-event": event,
                   "user-agent": "callcenter-engine"}
        if self.secret:
            headers[SIGNATURE_HEADER] = signature(self.secret, body)
        request = urllib.request.Request(self.url, data=body, method="POST", headers=headers)
        with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310 (http(s) only, checked in settings)
            return response.status

    async def send(self, payload: dict, event: str = "screen_pop") -> str | None:
        """None when the receiver took it (2xx), else what went wrong."""
        body = json.dumps(payload, default=str, ensure_ascii=False).encode()
        try:
            status = await asyncio.to_thread(self._post, body, event)
        except urllib.error.HTTPError as exc:
            return f"HTTP {exc.code}"
        except (urllib.error.URLError, OSError, TimeoutError) as exc:
            return str(getattr(exc, "reason", exc))[:200]
        return None if 200 <= status < 300 else f"HTTP {status}"
