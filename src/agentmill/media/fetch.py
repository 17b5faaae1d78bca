"""Fetching an image URL a chat message names, when the server allows it (`media.fetch_urls`).

Only http(s); every address the host resolves to must be public (no loopback, private,
link-local, multicast or reserved range: a client must not reach the server's own network
through us), redirects are followed by hand (at most 3) and checked the same way, and the body
stops at the size limit.
"""

from __future__ import annotations

import ipaddress
import socket
import urllib.error
import urllib.parse
import urllib.request

from agentmill.media.errors import MediaError

MAX_REDIRECTS = 3


def check_public(url: str) -> None:
    """A MediaError unless `url` is http(s) and its host resolves only to public addresses."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise MediaError(f"the URL {url[:80]!r} is not an http(s) URL")
    try:
        infos = socket.getaddrinfo(parts.hostname, parts.port or (443 if parts.scheme == "https" else 80),
                                   type=socket.SOCK_STREAM)
    except socket.gaierror:
        raise MediaError(f"the URL's host {parts.hostname!r} does not resolve") from None
    for info in infos:
        address = ipaddress.ip_address(info[4][0].split("%")[0])
        if not address.is_global or address.is_multicast:
            raise MediaError(f"the URL's host {parts.hostname!r} is a private, loopback or reserved address "
                             f"({address}): this server does not fetch from such addresses", code="url_refused")


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def fetch(url: str, max_bytes: int, timeout: float) -> tuple[bytes, str]:
    """(body, content type) of `url`, following at most MAX_REDIRECTS checked redirects."""
    opener = urllib.request.build_opener(_NoRedirect)
    for _ in range(MAX_REDIRECTS + 1):
        check_public(url)
        request = urllib.request.Request(url, headers={"User-Agent": "agentmill"})
        try:
            with opener.open(request, timeout=timeout) as response:
                body = response.read(max_bytes + 1)
                if len(body) > max_bytes:
                    raise MediaError(f"the URL's content is over the limit of {max_bytes:,} bytes", status=413,
                                     code="file_too_large")
                return body, response.headers.get_content_type()
        except urllib.error.HTTPError as err:
            if err.code in (301, 302, 303, 307, 308) and err.headers.get("Location"):
                url = urllib.parse.urljoin(url, err.headers["Location"])
                continue
            raise MediaError(f"fetching the URL failed: HTTP {err.code}") from None
        except (urllib.error.URLError, TimeoutError, OSError) as err:
            raise MediaError(f"fetching the URL failed: {getattr(err, 'reason', err)}") from None
    raise MediaError(f"the URL redirects more than {MAX_REDIRECTS} times")
