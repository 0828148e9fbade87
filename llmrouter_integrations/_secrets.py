"""Secrets kept out of everything shown: the one place they are scrubbed and masked.

API keys are scrubbed from a provider error, its fields and its exception chain; credentials
in a URL (a password in `user:password@`, a `?api_key=` value) are masked wherever a URL is
shown, while the real URL is still used to connect.

>>> forms = secret_forms("sk-live\\\\abc")
>>> error = ProviderError("bad key sk-live\\\\abc")
>>> scrub_error(error, forms).message
'bad key ***'
>>> mask_url("http://user:hunter2@proxy:8080/v1?api_key=sk-1&v=2")
'http://***@proxy:8080/v1?api_key=***&v=2'
"""

from __future__ import annotations

import base64
import json
import sys
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, quote_plus, unquote, unquote_plus, urlsplit, urlunsplit

from .errors import ProviderError

if TYPE_CHECKING:
    from pydantic import SecretStr

__all__ = [
    "REDACTED",
    "mask_url",
    "schema_with_secret_str",
    "scrub_error",
    "secret_forms",
    "secret_str",
    "split_url_credentials",
    "url_secrets",
]

REDACTED = "***"
_MAX_DEPTH = 64  # error bodies nest little; deeper structures are withheld, not walked
_MAX_CHAIN = 16


def secret_str(value: SecretStr | str | None) -> SecretStr | None:
    """A key as `pydantic.SecretStr` (a str is wrapped; None or a SecretStr stay as they are).

    pydantic is imported on first use: it is about 35 ms of `import llmrouter_integrations`,
    and only a deployment with a key needs it.

    >>> secret_str("sk-1")
    SecretStr('**********')
    """
    if not isinstance(value, str):
        return value
    from pydantic import SecretStr

    return SecretStr(value)


def schema_with_secret_str(cls: type[Any], source: Any, handler: Any) -> Any:
    """`__get_pydantic_core_schema__` for a class whose annotations name SecretStr while its
    module imports it only for type checkers (`Deployment`, held by the LangChain adapter's
    model): pydantic resolves those names in that module, so SecretStr is put there first.

    >>> __get_pydantic_core_schema__ = classmethod(schema_with_secret_str)
    """
    from pydantic import SecretStr

    vars(sys.modules[cls.__module__])["SecretStr"] = SecretStr
    return handler(source)


def secret_forms(*secrets: str | None) -> tuple[str, ...]:
    """Each secret as a provider or a library may echo it: raw, JSON-escaped, repr-escaped,
    percent-encoded. Longest first, so a longer form is replaced before a shorter one inside it.
    """
    forms: set[str] = set()
    for secret in secrets:
        if secret:
            forms.update(
                (
                    secret,
                    json.dumps(secret)[1:-1],
                    json.dumps(secret, ensure_ascii=False)[1:-1],
                    repr(secret)[1:-1],
                    quote(secret, safe=""),
                    quote_plus(secret, safe=""),
                )
            )
    forms.discard("")
    return tuple(sorted(forms, key=len, reverse=True))


# A query parameter whose name holds one of these carries a credential (api_key, key,
# access_token, X-Amz-Signature, sig, password, client_secret, auth...).
_SECRET_QUERY_HINTS = ("key", "token", "secret", "pass", "pwd", "auth", "sig", "credential")


def mask_url(url: str) -> str:
    """`url` as it may be shown: user:password@ hidden, secret-looking query values hidden.

    Leans towards hiding: everything before the URL's last `@` goes (a broken password may
    hold an unescaped `/`, `?` or `#`; an `@` in a query costs the host its display), and a
    query value goes when its name merely looks secret.

    >>> mask_url("redis://:hunter2@cache:6379/0")
    'redis://***@cache:6379/0'
    >>> mask_url("https://gateway.example/v1?key=AIza123&region=eu")
    'https://gateway.example/v1?key=***&region=eu'
    """
    scheme, sep, rest = url.partition("://")
    if not sep:
        scheme, rest = "", url
    if "@" in rest:
        rest = REDACTED + "@" + rest.rpartition("@")[2]
    head, question, query = rest.partition("?")
    query, hash_sign, fragment = query.partition("#")
    if question:
        query = "&".join(_mask_pair(pair) for pair in query.split("&"))
    return f"{scheme}{sep}{head}{question}{query}{hash_sign}{fragment}"


def _mask_pair(pair: str) -> str:
    name, equals, value = pair.partition("=")
    if equals and value and _secret_name(name):
        return f"{name}={REDACTED}"
    return pair


def _secret_name(name: str) -> bool:
    lowered = unquote_plus(name).lower()
    return any(hint in lowered for hint in _SECRET_QUERY_HINTS)


def url_secrets(url: str) -> tuple[str, ...]:
    """The credentials a URL carries (userinfo, its parts, secret query values, the Basic
    auth token made of them), raw and percent-decoded: what an error must not echo.

    >>> sorted(url_secrets("http://me:pw@host/v1"))
    ['bWU6cHc=', 'me:pw', 'pw']
    """
    found: set[str] = set()
    _, _, rest = url.partition("://") if "://" in url else ("", "", url)
    if "@" in rest:  # as mask_url: all before the last "@"
        userinfo = rest.rpartition("@")[0]
        user, colon, password = userinfo.partition(":")
        found.update((userinfo, password, unquote(password)))
        if not colon:  # `https://TOKEN@host`: the user name is the credential
            found.update((user, unquote(user)))
        found.add(base64.b64encode(f"{unquote(user)}:{unquote(password)}".encode()).decode())
    query = rest.partition("?")[2].partition("#")[0]
    for pair in query.split("&") if query else ():
        name, _, value = pair.partition("=")
        if value and _secret_name(name):
            found.update((value, unquote_plus(value)))
    found.discard("")
    return tuple(sorted(found))


def split_url_credentials(url: str) -> tuple[str, str | None]:
    """(`url` without its `user:password@`, the Basic `Authorization` value they make, or None).

    HTTP libraries disagree on userinfo in a URL (aiohttp refuses it next to an Authorization
    header, httpx silently replaces that header), so the router sends it as a header itself.

    >>> split_url_credentials("http://me:pw@host:8080/v1")
    ('http://host:8080/v1', 'Basic bWU6cHc=')
    """
    try:
        parts = urlsplit(url)
        user, password = parts.username, parts.password
    except ValueError:
        return url, None
    if user is None and password is None:
        return url, None
    host = parts.netloc.rpartition("@")[2]
    token = f"{unquote(user or '')}:{unquote(password or '')}".encode()
    bare = urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))
    return bare, "Basic " + base64.b64encode(token).decode()


def scrub_error(error: ProviderError, forms: tuple[str, ...]) -> ProviderError:
    """Remove every form of the key from `error` (message, args, body, headers, any field),
    and cut from its `__cause__`/`__context__` chain whatever could hold the raw reply or
    the request (a JSONDecodeError's `.doc`, an HTTP library error's `.request` headers).
    Returns `error`, changed in place.
    """
    if forms:
        for name, value in list(vars(error).items()):
            setattr(error, name, _scrub(value, forms, 0))
        error.args = tuple(_scrub(arg, forms, 0) for arg in error.args)
    _cut_chain(error, forms)
    return error


def _scrub(value: Any, forms: tuple[str, ...], depth: int) -> Any:
    if isinstance(value, str):
        for form in forms:
            if form in value:
                value = value.replace(form, REDACTED)
        return value
    if isinstance(value, bytes):
        return _scrub(value.decode("utf-8", "replace"), forms, depth)
    if isinstance(value, (dict, list, tuple)) and depth >= _MAX_DEPTH:
        return "<withheld: nested too deeply>"
    if isinstance(value, dict):
        return {
            _scrub(key, forms, depth + 1): _scrub(item, forms, depth + 1)
            for key, item in value.items()
        }
    if isinstance(value, (list, tuple)):
        return type(value)(_scrub(item, forms, depth + 1) for item in value)
    return value


def _cut_chain(error: BaseException, forms: tuple[str, ...]) -> None:
    """Keep only chain links that can hold nothing secret: our own (scrubbed) errors and
    plain errors whose text is clean; the chain ends at the first other link. `raise X
    from None` still sets `__context__`, which tracebacks hide but `e.__context__`,
    debuggers and error trackers do not, so kept links become explicit causes."""
    kept: list[BaseException] = [error]
    current: BaseException = error
    while len(kept) < _MAX_CHAIN:
        link = current.__cause__ if current.__cause__ is not None else current.__context__
        if link is None or any(link is seen for seen in kept):
            break
        if isinstance(link, ProviderError):
            if forms:
                for name, value in list(vars(link).items()):
                    setattr(link, name, _scrub(value, forms, 0))
                link.args = tuple(_scrub(arg, forms, 0) for arg in link.args)
        elif not _harmless(link, forms):
            break
        kept.append(link)
        current = link
    for position, link in enumerate(kept):
        link.__context__ = None
        link.__cause__ = kept[position + 1] if position + 1 < len(kept) else None
        link.__suppress_context__ = True


def _harmless(error: BaseException, forms: tuple[str, ...]) -> bool:
    # HTTP library errors carry the request (and its Authorization header) or the reply;
    # ValueError covers JSONDecodeError (.doc is the raw body) and parser complaints.
    if type(error).__module__.split(".")[0] in ("aiohttp", "httpx", "httpcore", "json"):
        return False
    if not isinstance(error, (OSError, KeyError, IndexError, TypeError, AttributeError)):
        return False
    try:
        text = repr(error.args) + str(vars(error) if hasattr(error, "__dict__") else "")
    except Exception:
        return False
    return not any(form in text for form in forms)
