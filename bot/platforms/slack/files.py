"""Files shared in Slack, downloaded safely for the engine (documents, datasets, eval sets).

Downloads use the bot token on `url_private_download`. The size is checked before and while
downloading (LADDER_MAX_UPLOAD_MB), and an HTML answer is refused: that is Slack's login page,
sent when the app lacks the `files:read` scope, never the file.
"""

from __future__ import annotations

import re
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from bot.chat.messages import Attachment
from bot.core.errors import LadderError

CHUNK = 1 << 16


MAX_REDIRECTS = 3


def slack_host(url: str, api_host: str | None = None) -> bool:
    """True when `url` is Slack's (slack.com or a subdomain, over https) or the configured
    Slack API host: the only places the bot token may go."""
    parsed = urlsplit(url)
    host = (parsed.hostname or "").lower()
    if api_host and host == api_host.lower():
        return True
    return parsed.scheme == "https" and (host == "slack.com" or host.endswith(".slack.com"))


def download(file: dict[str, Any], token: str, folder: Path, max_mb: float, timeout_s: float = 60.0,
             api_host: str | None = None) -> Attachment:
    """Download one Slack file object into `folder` and return it as an Attachment.

    The token is sent only to Slack's hosts (`slack_host`), and each redirect is checked the
    same way before it is followed. Raises LadderError naming the file and the fix: too big, no
    download URL or one off Slack, an HTML page instead of the file (missing `files:read`
    scope), or Slack refusing the download.
    """
    name = Path(file.get("name") or file.get("title") or file.get("id", "upload")).name
    limit = int(max_mb * 1_000_000)
    size = int(file.get("size") or 0)
    if size > limit:
        raise LadderError(f"{name} is {size / 1e6:.1f} MB, over the {max_mb:g} MB limit; share a smaller file "
                          "or raise LADDER_MAX_UPLOAD_MB")
    url = file.get("url_private_download") or file.get("url_private")
    if not url:
        raise LadderError(f"Slack gave no download link for {name} (an external or deleted file?); share it again")
    target = Path(folder) / re.sub(r"[^\w.-]+", "_", file.get("id", "file")) / name
    target.parent.mkdir(parents=True, exist_ok=True)
    received = 0
    try:
        with _open(url, name, token, timeout_s, api_host) as response:
            kind = response.headers.get("content-type", "")
            if response.status_code != 200:
                raise LadderError(f"Slack refused to hand over {name} (HTTP {response.status_code}); check that the app "
                                  "has the files:read scope and can see the channel")
            if kind.startswith("text/html") and not name.lower().endswith((".html", ".htm")):
                raise LadderError(f"Slack sent a web page instead of {name}: the app needs the files:read scope "
                                  "(OAuth & Permissions), then reinstall it")
            with open(target, "wb") as out:
                for chunk in response.iter_bytes(CHUNK):
                    received += len(chunk)
                    if received > limit:
                        raise LadderError(f"{name} is over the {max_mb:g} MB limit; share a smaller file or raise "
                                          "LADDER_MAX_UPLOAD_MB")
                    out.write(chunk)
    except httpx.HTTPError as exc:
        target.unlink(missing_ok=True)
        raise LadderError(f"could not download {name} from Slack ({type(exc).__name__}); try again") from None
    except LadderError:
        target.unlink(missing_ok=True)
        raise
    return Attachment(name, target, received)


@contextmanager
def _open(url: str, name: str, token: str, timeout_s: float, api_host: str | None):
    """Yield the streamed response for `url`, following up to MAX_REDIRECTS redirects that stay
    on Slack's hosts; raise LadderError for a link or a redirect that leaves them."""
    with httpx.Client(timeout=timeout_s, follow_redirects=False) as client:
        for _ in range(MAX_REDIRECTS + 1):
            if not slack_host(url, api_host):
                raise LadderError(f"the download link of {name} does not point at Slack ({urlsplit(url).hostname}); "
                                  "the bot token is only sent to Slack, so share the file in Slack itself")
            with client.stream("GET", url, headers={"Authorization": f"Bearer {token}"}) as response:
                if not response.is_redirect:
                    yield response
                    return
                url = str(response.url.join(response.headers.get("location", "")))
    raise LadderError(f"Slack redirected the download of {name} more than {MAX_REDIRECTS} times; share it again")
