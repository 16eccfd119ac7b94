"""A real OpenID Connect provider for the tests: panva's certified oidc-provider (pinned in
``tests/oidc_provider/``), run by Node on a free loopback port, over plain HTTP.

Nothing is installed at run time: ``make test`` runs ``npm ci`` there beforehand. Each start gets
its own confidential client (``client_secret_post``, Basic accepted too), PKCE S256 required,
signing keys made here with ``cryptography`` and users with roles, teams, ``amr`` and ``acr``.
Sign-in is an HTML form any browser (or :class:`Browser` below, without one) can fill in; consent
is never asked; RP-initiated logout confirms itself.

A session fixture, for tests outside this module::

    @pytest.fixture(scope="session")
    def oidc_idp(live_server, tmp_path_factory):
        redirect = f"{live_server.url}/oidc/callback/"
        with oidc_provider(redirect_uris=[redirect], post_logout_redirect_uris=[live_server.url + "/"],
                           workdir=tmp_path_factory.mktemp("oidc")) as provider:
            yield provider
"""

from __future__ import annotations

import base64
import copy
import dataclasses
import functools
import json
import secrets
import shutil
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from html.parser import HTMLParser
from http.cookiejar import CookieJar
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlencode, urljoin

from cryptography.hazmat.primitives.asymmetric import ec, rsa

PROVIDER_DIR = Path(__file__).resolve().parent / "oidc_provider"
NPM_CI = "npm ci --ignore-scripts --no-audit --no-fund --prefix tests/oidc_provider"

Algorithm = Literal["RS256", "ES256"]


class OIDCProviderError(RuntimeError):
    pass


@dataclasses.dataclass(frozen=True)
class User:
    """One account of the provider: signs in as ``username`` (and ``password`` when set)."""

    username: str
    sub: str
    email: str
    name: str
    roles: tuple[str, ...] = ()
    teams: tuple[str, ...] = ()
    amr: tuple[str, ...] = ("pwd",)
    acr: str | None = None  # None: the ID token has no acr claim
    password: str | None = None

    def config(self) -> dict[str, object]:
        return {
            "username": self.username,
            "sub": self.sub,
            "email": self.email,
            "name": self.name,
            "caspix_roles": list(self.roles),
            "caspix_teams": list(self.teams),
            "amr": list(self.amr),
            "acr": self.acr,
            "password": self.password,
        }


MFA = "urn:bank:mfa"
ALICE = User("alice", "alice-0001", "alice@bank.test", "Alice Analyst", ("analyst",), ("cards",), ("pwd", "otp"), MFA)
BOB = User("bob", "bob-0002", "bob@bank.test", "Bob Analyst", ("analyst",), ("aml",), ("pwd",))


def _b64(number: int, size: int | None = None) -> str:
    raw = number.to_bytes(size or (number.bit_length() + 7) // 8, "big")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


@dataclasses.dataclass(frozen=True)
class SigningKey:
    """A key the provider signs ID tokens with; ``private_key`` lets a test sign its own (PyJWT
    takes it as is)."""

    alg: Algorithm
    kid: str
    private_key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey

    def public_jwk(self) -> dict[str, str]:
        head = {"kid": self.kid, "alg": self.alg, "use": "sig"}
        if isinstance(self.private_key, rsa.RSAPrivateKey):
            numbers = self.private_key.public_key().public_numbers()
            return head | {"kty": "RSA", "n": _b64(numbers.n), "e": _b64(numbers.e)}
        point = self.private_key.public_key().public_numbers()
        return head | {"kty": "EC", "crv": "P-256", "x": _b64(point.x, 32), "y": _b64(point.y, 32)}

    def private_jwk(self) -> dict[str, str]:
        if isinstance(self.private_key, rsa.RSAPrivateKey):
            n = self.private_key.private_numbers()
            return self.public_jwk() | {
                "d": _b64(n.d),
                "p": _b64(n.p),
                "q": _b64(n.q),
                "dp": _b64(n.dmp1),
                "dq": _b64(n.dmq1),
                "qi": _b64(n.iqmp),
            }
        return self.public_jwk() | {"d": _b64(self.private_key.private_numbers().private_value, 32)}


@functools.cache
def signing_key(alg: Algorithm = "RS256", name: str = "op") -> SigningKey:
    """A key for ``alg``, made once per test process; another ``name`` is another key (and kid)."""
    private_key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
    if alg == "RS256":
        private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    else:
        private_key = ec.generate_private_key(ec.SECP256R1())
    return SigningKey(alg, f"{name}-{alg.lower()}-{secrets.token_hex(4)}", private_key)


@dataclasses.dataclass(frozen=True)
class OIDCProvider:
    issuer: str
    client_id: str
    client_secret: str
    alg: Algorithm
    keys: tuple[SigningKey, ...]
    users: tuple[User, ...]
    metadata: dict[str, Any]  # the discovery document, as served
    log: Path

    @property
    def signing_key(self) -> SigningKey:
        """The key ID tokens are signed with: the first published one for ``alg``."""
        return next(key for key in self.keys if key.alg == self.alg)

    @property
    def authorization_endpoint(self) -> str:
        return str(self.metadata["authorization_endpoint"])

    @property
    def token_endpoint(self) -> str:
        return str(self.metadata["token_endpoint"])

    @property
    def userinfo_endpoint(self) -> str:
        return str(self.metadata["userinfo_endpoint"])

    @property
    def jwks_uri(self) -> str:
        return str(self.metadata["jwks_uri"])

    @property
    def end_session_endpoint(self) -> str:
        return str(self.metadata["end_session_endpoint"])

    def rp_settings(self) -> dict[str, object]:
        """mozilla-django-oidc's settings for this provider (PKCE on, as the provider demands)."""
        return {
            "OIDC_RP_CLIENT_ID": self.client_id,
            "OIDC_RP_CLIENT_SECRET": self.client_secret,
            "OIDC_RP_SIGN_ALGO": self.alg,
            "OIDC_RP_SCOPES": "openid email profile caspix",
            "OIDC_OP_AUTHORIZATION_ENDPOINT": self.authorization_endpoint,
            "OIDC_OP_TOKEN_ENDPOINT": self.token_endpoint,
            "OIDC_OP_USER_ENDPOINT": self.userinfo_endpoint,
            "OIDC_OP_JWKS_ENDPOINT": self.jwks_uri,
            "OIDC_USE_PKCE": True,
            "OIDC_PKCE_CODE_CHALLENGE_METHOD": "S256",
        }

    def logs(self) -> str:
        return self.log.read_text(errors="replace")


def _opener(*handlers: urllib.request.BaseHandler) -> urllib.request.OpenerDirector:
    # No proxy, whatever the environment says: everything here is on loopback.
    return urllib.request.build_opener(urllib.request.ProxyHandler({}), *handlers)


def _discovery(issuer: str) -> dict[str, Any] | None:
    try:
        with _opener().open(f"{issuer}/.well-known/openid-configuration", timeout=2) as answer:
            document: dict[str, Any] = json.load(answer)
            return document
    except OSError:
        return None


def _node_modules() -> None:
    """Refuse to start on missing or stale packages: the fix is a command, never a download here."""
    pinned = json.loads((PROVIDER_DIR / "package.json").read_text())["dependencies"]["oidc-provider"]
    installed = PROVIDER_DIR / "node_modules" / "oidc-provider" / "package.json"
    if not installed.exists():
        raise OIDCProviderError(f"the test OIDC provider is not installed: run `make test`, or `{NPM_CI}`")
    version = json.loads(installed.read_text())["version"]
    if version != pinned:
        raise OIDCProviderError(f"oidc-provider {version} is installed, {pinned} is pinned: run `{NPM_CI}`")


@contextmanager
def oidc_provider(
    *,
    redirect_uris: Sequence[str],
    post_logout_redirect_uris: Sequence[str] = (),
    users: Sequence[User] = (ALICE, BOB),
    alg: Algorithm = "RS256",
    keys: Sequence[SigningKey] | None = None,
    client_id: str = "caspix",
    client_secret: str | None = None,
    acr_values: Sequence[str] = (),
    id_token_ttl: int = 600,
    logout_prompt: bool = False,
    workdir: Path | None = None,
    timeout: float = 15.0,
) -> Iterator[OIDCProvider]:
    """Start the provider; stop it (terminate, then kill) on exit.

    ``keys`` are published in the JWKS (by default an RS256 and an ES256 key); ID tokens are
    signed with the first of them for ``alg``. Two providers given the same keys sign alike;
    given their own, neither's tokens verify against the other's JWKS. ``logout_prompt`` keeps
    the logout confirmation on screen (button ``#sign-out``) instead of submitting it. The
    config, the ready file and the log (``provider.log``) go to ``workdir``, a temporary
    directory by default.
    """
    node = shutil.which("node")
    if node is None:
        raise OIDCProviderError("node is not on PATH: the test OIDC provider needs Node.js 20 (apt-get install nodejs)")
    _node_modules()
    client_secret = client_secret or secrets.token_urlsafe(24)
    published = tuple(keys) if keys is not None else (signing_key("RS256"), signing_key("ES256"))
    if not any(key.alg == alg for key in published):
        raise OIDCProviderError(f"no {alg} key among the keys to publish")
    with tempfile.TemporaryDirectory(prefix="oidc-idp-") as scratch:
        folder = workdir or Path(scratch)
        folder.mkdir(parents=True, exist_ok=True)
        ready, log, config_file = folder / "ready.json", folder / "provider.log", folder / "provider.json"
        ready.unlink(missing_ok=True)
        client = {
            "client_id": client_id,
            "client_secret": client_secret,
            "redirect_uris": list(redirect_uris),
            "post_logout_redirect_uris": list(post_logout_redirect_uris),
            "token_endpoint_auth_method": "client_secret_post",
            "id_token_signed_response_alg": alg,
        }
        config = {
            "port": 0,
            "ready_file": str(ready),
            "client": client,
            "jwks": {"keys": [key.private_jwk() for key in published]},
            "users": [user.config() for user in users],
            "acr_values": list(acr_values),
            "cookie_keys": ["caspix-test-cookie-key"],
            "ttl": {"id_token": id_token_ttl},
            "logout_prompt": logout_prompt,
        }
        config_file.write_text(json.dumps(config))
        with log.open("wb") as output:
            process = subprocess.Popen(
                [node, "provider.mjs", str(config_file)],
                cwd=PROVIDER_DIR,
                stdin=subprocess.PIPE,
                stdout=output,
                stderr=subprocess.STDOUT,
                env={"PATH": str(Path(node).parent), "NODE_ENV": "test"},
            )
        try:
            deadline = time.monotonic() + timeout
            metadata = None
            while metadata is None:
                if process.poll() is not None or time.monotonic() > deadline:
                    tail = log.read_text(errors="replace")[-3000:]
                    raise OIDCProviderError(f"the test OIDC provider did not start (exit {process.poll()}):\n{tail}")
                if ready.exists():
                    metadata = _discovery(json.loads(ready.read_text())["issuer"])
                if metadata is None:
                    time.sleep(0.05)
            yield OIDCProvider(
                issuer=str(metadata["issuer"]),
                client_id=client_id,
                client_secret=client_secret,
                alg=alg,
                keys=published,
                users=tuple(users),
                metadata=metadata,
                log=log,
            )
        finally:
            if process.stdin is not None:
                process.stdin.close()
            process.terminate()
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)


@dataclasses.dataclass(frozen=True)
class Page:
    url: str
    status: int
    location: str | None  # absolute, for a redirect
    text: str


@dataclasses.dataclass
class Form:
    id: str
    action: str
    fields: dict[str, str]


class _Forms(HTMLParser):
    """The forms of a page and their named inputs, including inputs tied to one by ``form=``."""

    def __init__(self) -> None:
        super().__init__()
        self.forms: dict[str, Form] = {}
        self.submits_itself = False  # a script submits a form on load
        self._open: Form | None = None
        self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script and ".submit()" in data:
            self.submits_itself = True

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attr = {key: value or "" for key, value in attrs}
        self._in_script = tag == "script"
        if tag == "form":
            self._open = Form(attr.get("id", str(len(self.forms))), attr.get("action", ""), {})
            self.forms[self._open.id] = self._open
        elif tag == "input" and "name" in attr:
            form = self.forms.get(attr["form"]) if "form" in attr else self._open
            if form is not None:
                form.fields[attr["name"]] = attr.get("value", "")

    def handle_endtag(self, tag: str) -> None:
        self._in_script = False
        if tag == "form":
            self._open = None


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


class Browser:
    """Just enough of a browser for the provider's pages, without JavaScript: a cookie jar,
    redirects followed one at a time, forms read from the HTML."""

    def __init__(self) -> None:
        self.cookies = CookieJar()
        self._opener = _opener(urllib.request.HTTPCookieProcessor(self.cookies), _NoRedirect())

    def open(self, url: str, data: Mapping[str, str] | None = None) -> Page:
        body = urlencode(data).encode() if data is not None else None
        request = urllib.request.Request(url, data=body)  # noqa: S310 (the test provider, on loopback)
        try:
            answer = self._opener.open(request, timeout=10)
        except urllib.error.HTTPError as error:  # 3xx and 4xx alike, as a browser sees them
            answer = error
        with answer:
            location = answer.headers.get("Location")
            return Page(
                url=url,
                status=answer.status,
                location=urljoin(url, location) if location else None,
                text=answer.read().decode(errors="replace"),
            )

    def follow(self, url: str, within: str, data: Mapping[str, str] | None = None) -> Page:
        """Open ``url`` and follow redirects while they stay under ``within``, posting the forms
        that a script would submit on load there; the last page, or the redirect that leaves
        (its ``location`` is where a browser would go next)."""
        page = self.open(url, data)
        for _ in range(20):
            if page.location is not None:
                if not page.location.startswith(within + "/"):
                    return page
                page = self.open(page.location)
                continue
            parser = _Forms()
            parser.feed(page.text)
            form = next(iter(parser.forms.values()), None)
            # oidc-provider ends the previous session this way when another user signs in.
            if not parser.submits_itself or form is None or not urljoin(page.url, form.action).startswith(within + "/"):
                return page
            page = self.open(urljoin(page.url, form.action), form.fields)
        raise OIDCProviderError(f"too many redirects from {url}")

    @staticmethod
    def forms(page: Page) -> dict[str, Form]:
        parser = _Forms()
        parser.feed(page.text)
        return parser.forms


def sign_in(
    browser: Browser,
    provider: OIDCProvider,
    authorization_url: str,
    username: str,
    *,
    password: str = "",
    acr: str = "",
    amr: Sequence[str] = (),
) -> str:
    """Sign in at the provider as a person would and return where it sends the browser next
    (the RP's callback with ``code`` and ``state``, or with ``error``). ``acr``/``amr`` replace
    the user's own for this sign-in only. A live session signs in without the form."""
    page = browser.follow(authorization_url, provider.issuer)
    if page.location is None:
        form = Browser.forms(page).get("login")
        if form is None:
            raise OIDCProviderError(f"no sign-in form at {page.url} ({page.status}):\n{page.text[:2000]}")
        fields = form.fields | {"username": username, "password": password, "acr": acr, "amr": ",".join(amr)}
        page = browser.follow(urljoin(page.url, form.action), provider.issuer, fields)
    if page.location is None:
        raise OIDCProviderError(f"the provider did not redirect ({page.status}):\n{page.text[:2000]}")
    return page.location


def sign_out(browser: Browser, provider: OIDCProvider, **params: str) -> str | None:
    """RP-initiated logout with ``params`` (``id_token_hint``, ``post_logout_redirect_uri``,
    ``state``...): the redirect back to the RP, or None when the provider's own page ends it."""
    page = browser.follow(f"{provider.end_session_endpoint}?{urlencode(params)}", provider.issuer)
    form = Browser.forms(page).get("op.logoutForm") if page.location is None else None
    if form is not None:  # the confirmation kept on screen (logout_prompt): click "Sign out"
        page = browser.follow(urljoin(page.url, form.action), provider.issuer, form.fields)
    return page.location


def configure_caspix(settings: Any, provider: OIDCProvider, **policy: object) -> None:
    """Point Caspix's OIDC federation (pytest-django's ``settings``) at ``provider``; ``policy``
    overrides ``CASPIX_OIDC`` entries (``mfa="idp"``, ``issuer=...``)."""
    settings.CASPIX_OIDC = {
        "issuer": provider.issuer,
        "roles_claim": "caspix_roles",
        "teams_claim": "caspix_teams",
        "mfa": "caspix",
        "mfa_acr": [MFA],
        "mfa_amr": ["mfa", "hwk", "otp"],
        "algorithms": ["RS256", "ES256"],
        **policy,
    }
    for name, value in provider.rp_settings().items():
        setattr(settings, name, value)
    settings.OIDC_OP_LOGOUT_ENDPOINT = provider.end_session_endpoint
    csp: dict[str, Any] = copy.deepcopy(settings.CONTENT_SECURITY_POLICY)
    csp["DIRECTIVES"]["form-action"] = [*csp["DIRECTIVES"]["form-action"], provider.issuer]
    settings.CONTENT_SECURITY_POLICY = csp  # as caspix/settings.py does for a configured provider
