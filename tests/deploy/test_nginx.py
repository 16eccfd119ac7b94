"""deploy/nginx/nginx.conf: modern TLS, HSTS, redirect-only HTTP, no public /metrics, no query in logs.

nginx's configuration is ``directive args;`` statements and ``name args { ... }`` blocks, with
quoted strings and ``#`` comments; the small parser below reads exactly that, so no dependency.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

NGINX_CONF = Path(__file__).resolve().parents[2] / "deploy" / "nginx" / "nginx.conf"


@dataclass(frozen=True)
class Token:
    value: str
    quoted: bool = False

    @property
    def is_punctuation(self) -> bool:
        return not self.quoted and self.value in {"{", "}", ";"}


@dataclass
class Directive:
    name: str
    args: list[str]
    block: list[Directive] | None = None
    line: int = 0

    def children(self, name: str) -> list[Directive]:
        return [child for child in self.block or [] if child.name == name]

    def child(self, name: str) -> Directive:
        found = self.children(name)
        assert len(found) == 1, f"expected one {name!r} in {self.name} {self.args}, found {len(found)}"
        return found[0]


def tokenize(text: str) -> Iterator[tuple[Token, int]]:
    i, line, length = 0, 1, len(text)
    while i < length:
        char = text[i]
        if char == "\n":
            line += 1
            i += 1
        elif char.isspace():
            i += 1
        elif char == "#":
            while i < length and text[i] != "\n":
                i += 1
        elif char in "{};":
            yield Token(char), line
            i += 1
        elif char in "\"'":
            start_line, i, value = line, i + 1, []
            while True:
                if i >= length:
                    raise ValueError(f"unterminated string starting on line {start_line}")
                if text[i] == "\\" and i + 1 < length:
                    value.append(text[i + 1])
                    i += 2
                    continue
                if text[i] == char:
                    i += 1
                    break
                if text[i] == "\n":
                    line += 1
                value.append(text[i])
                i += 1
            yield Token("".join(value), quoted=True), start_line
        else:
            start = i
            while i < length and not text[i].isspace() and text[i] not in "{};\"'":
                i += 1
            yield Token(text[start:i]), line


def parse(text: str) -> list[Directive]:
    tokens = list(tokenize(text))
    position = 0

    def parse_block(closing: bool) -> list[Directive]:
        nonlocal position
        directives: list[Directive] = []
        words: list[str] = []
        first_line = 0
        while position < len(tokens):
            token, line = tokens[position]
            position += 1
            if not token.is_punctuation:
                if not words:
                    first_line = line
                words.append(token.value)
            elif token.value == ";":
                if not words:
                    raise ValueError(f"empty statement on line {line}")
                directives.append(Directive(words[0], words[1:], None, first_line))
                words = []
            elif token.value == "{":
                if not words:
                    raise ValueError(f"block without a name on line {line}")
                name, args = words[0], words[1:]
                words = []
                directives.append(Directive(name, args, parse_block(closing=True), first_line))
            else:  # "}"
                if not closing or words:
                    raise ValueError(f"unexpected '}}' on line {line}")
                return directives
        if closing or words:
            raise ValueError("unexpected end of file")
        return directives

    return parse_block(closing=False)


def walk(directives: list[Directive]) -> Iterator[Directive]:
    for directive in directives:
        yield directive
        yield from walk(directive.block or [])


def resolve_location(server: Directive, uri: str) -> Directive | None:
    """The location nginx picks for ``uri``: exact, then longest prefix (``^~`` stops), regex, prefix."""
    exact, prefixes, regexes = None, [], []
    for location in server.children("location"):
        if location.args[0] == "=" and location.args[1] == uri:
            exact = location
        elif location.args[0] == "^~":
            prefixes.append((location.args[1], True, location))
        elif location.args[0] in {"~", "~*"}:
            regexes.append(location)
        elif location.args[0] not in {"=", "@"}:
            prefixes.append((location.args[0], False, location))
    if exact is not None:
        return exact
    matching = [item for item in prefixes if uri.startswith(item[0])]
    longest = max(matching, key=lambda item: len(item[0]), default=None)
    if longest is not None and longest[1]:
        return longest[2]
    for location in regexes:
        flags = re.IGNORECASE if location.args[0] == "~*" else 0
        if re.search(location.args[1], uri, flags):
            return location
    return longest[2] if longest is not None else None


@pytest.fixture(scope="module")
def config() -> list[Directive]:
    return parse(NGINX_CONF.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def http(config: list[Directive]) -> Directive:
    (block,) = [directive for directive in config if directive.name == "http"]
    return block


def server_listening_on(http: Directive, port: str) -> Directive:
    found = [s for s in http.children("server") if any(d.args[0] == port for d in s.children("listen"))]
    assert len(found) == 1, f"expected one server on {port}"
    return found[0]


@pytest.fixture(scope="module")
def tls_server(http: Directive) -> Directive:
    return server_listening_on(http, "8443")


@pytest.fixture(scope="module")
def plain_server(http: Directive) -> Directive:
    return server_listening_on(http, "8080")


# --- The parser itself --------------------------------------------------------------------------


def test_it_parses_blocks_quotes_and_comments() -> None:
    parsed = parse(
        """
        # a comment; with { braces }
        events { worker_connections 10; }
        http {
            add_header X-Test "a; b { c }" always;  # trailing comment
            log_format f escape=json '{"a":"$uri"}'
                '{"b":1}';
            location = /x { return 404; }
        }
        """
    )
    assert [directive.name for directive in parsed] == ["events", "http"]
    http = parsed[1]
    assert http.child("add_header").args == ["X-Test", "a; b { c }", "always"]
    assert http.child("log_format").args == ["f", "escape=json", '{"a":"$uri"}', '{"b":1}']
    assert http.child("location").args == ["=", "/x"]
    assert http.child("location").child("return").args == ["404"]


@pytest.mark.parametrize("text", ["http {", "http { }}", "a b", "add_header 'x;", "{ a; }"])
def test_it_rejects_malformed_configuration(text: str) -> None:
    with pytest.raises(ValueError, match=r"."):
        parse(text)


def test_it_resolves_locations_as_nginx_does() -> None:
    (server,) = parse(
        """
        server {
            location / { a; }
            location = /metrics { b; }
            location ^~ /static/ { c; }
            location ~ \\.php$ { d; }
            location /static/deep/ { e; }
        }
        """
    )
    names = {uri: resolve_location(server, uri) for uri in ["/", "/metrics", "/static/x.php", "/y.php", "/metricsx"]}
    assert {uri: location.block[0].name for uri, location in names.items() if location and location.block} == {
        "/": "a",
        "/metrics": "b",
        "/static/x.php": "c",
        "/y.php": "d",
        "/metricsx": "a",
    }


# --- The configuration ---------------------------------------------------------------------------


def test_it_runs_unprivileged_with_state_under_tmp(config: list[Directive], http: Directive) -> None:
    top = {directive.name: directive.args for directive in config if directive.block is None}
    assert top["pid"] == ["/tmp/nginx.pid"]
    for name in ("client_body_temp_path", "proxy_temp_path", "fastcgi_temp_path", "uwsgi_temp_path", "scgi_temp_path"):
        assert http.child(name).args[0].startswith("/tmp/"), name
    for listen in walk(config):
        if listen.name == "listen":
            assert int(listen.args[0].rsplit(":", 1)[-1]) >= 1024, "an unprivileged port"


def test_it_hides_the_nginx_version(http: Directive) -> None:
    assert http.child("server_tokens").args == ["off"]


def test_it_allows_only_tls_1_2_and_1_3(config: list[Directive], tls_server: Directive) -> None:
    assert tls_server.child("ssl_protocols").args == ["TLSv1.2", "TLSv1.3"]
    for directive in walk(config):
        if directive.name == "ssl_protocols":
            assert directive.args == ["TLSv1.2", "TLSv1.3"]


def test_it_offers_only_forward_secret_aead_ciphers(tls_server: Directive) -> None:
    (spec,) = tls_server.child("ssl_ciphers").args
    ciphers = spec.split(":")
    assert ciphers
    for cipher in ciphers:
        assert not cipher.startswith(("!", "-", "+", "@")), cipher
        assert cipher.upper() not in {"ALL", "DEFAULT", "HIGH", "MEDIUM", "LOW", "COMPLEMENTOFDEFAULT"}, cipher
        assert cipher.startswith(("ECDHE-", "TLS_")), f"{cipher}: no forward secrecy (RSA/DH key exchange)"
        assert "GCM" in cipher or "CHACHA20" in cipher, f"{cipher}: not an AEAD suite"
        assert "CBC" not in cipher, cipher
        assert not cipher.endswith("-SHA"), f"{cipher}: SHA-1 MAC"
        assert not re.search(r"RC4|3DES|DES-|NULL|EXPORT|MD5|PSK|SRP|CAMELLIA|ARIA|anon", cipher), cipher
    assert tls_server.child("ssl_prefer_server_ciphers").args == ["off"]


def test_it_configures_tls_sessions_and_curves(tls_server: Directive) -> None:
    assert tls_server.child("ssl_session_tickets").args == ["off"]
    assert tls_server.child("ssl_session_cache").args == ["shared:SSL:10m"]
    assert tls_server.child("ssl_session_timeout").args == ["1d"]
    assert tls_server.child("ssl_ecdh_curve").args == ["X25519:prime256v1:secp384r1"]
    assert tls_server.child("ssl_certificate").args == ["/run/secrets/tls_cert"]
    assert tls_server.child("ssl_certificate_key").args == ["/run/secrets/tls_key"]
    listen = tls_server.child("listen").args
    assert listen[0] == "8443"
    assert "ssl" in listen
    assert tls_server.child("http2").args == ["on"]


def test_it_sends_hsts_for_a_year_on_every_response(tls_server: Directive) -> None:
    headers = [d for d in tls_server.children("add_header") if d.args[0].lower() == "strict-transport-security"]
    assert len(headers) == 1
    _, value, *flags = headers[0].args
    match = re.search(r"max-age=(\d+)", value)
    assert match is not None
    assert int(match.group(1)) >= 31_536_000
    assert "includeSubDomains" in value
    assert flags == ["always"]
    # add_header in a location would silently drop the server's headers there.
    for location in walk(tls_server.block or []):
        if location.name == "location":
            assert not location.children("add_header"), location.args


def test_it_only_redirects_plain_http_to_https(plain_server: Directive) -> None:
    names = {directive.name for directive in plain_server.block or []}
    assert names <= {"listen", "server_name", "return"}
    assert plain_server.child("return").args == ["301", "https://$host$request_uri"]
    assert not any(directive.name == "proxy_pass" for directive in walk(plain_server.block or []))


@pytest.mark.parametrize("uri", ["/metrics", "/metrics/", "/metrics/anything"])
def test_it_does_not_proxy_metrics(tls_server: Directive, uri: str) -> None:
    location = resolve_location(tls_server, uri)
    assert location is not None
    assert not location.children("proxy_pass")
    assert location.child("return").args == ["404"]


@pytest.mark.parametrize("uri", ["/", "/work/cases/1", "/healthz", "/static/caspix/app.css", "/metricsx"])
def test_it_proxies_the_app_to_the_web_upstream(http: Directive, tls_server: Directive, uri: str) -> None:
    location = resolve_location(tls_server, uri)
    assert location is not None
    assert location.child("proxy_pass").args == ["http://caspix_web"]
    upstream = http.child("upstream")
    assert upstream.args == ["caspix_web"]
    assert upstream.child("server").args == ["web:8000"]


def test_it_sets_the_forwarded_headers_itself(tls_server: Directive) -> None:
    location = resolve_location(tls_server, "/")
    assert location is not None
    headers = {d.args[0].lower(): d.args[1] for d in location.children("proxy_set_header")}
    assert headers["host"] == "$host"
    assert headers["x-forwarded-proto"] == "https"
    assert headers["x-forwarded-for"] == "$proxy_add_x_forwarded_for"
    assert headers["x-request-id"] == "$request_id"
    assert headers["x-forwarded-host"] == ""


def test_it_limits_the_request_body(http: Directive) -> None:
    assert http.child("client_max_body_size").args == ["25m"]


def test_it_logs_json_without_query_strings(http: Directive) -> None:
    log_format = http.child("log_format")
    name, escape, *parts = log_format.args
    assert (name, escape) == ("json", "escape=json")
    template = "".join(parts)
    for variable in ("$request_uri", "$args", "$query_string", "$arg_", "$http_referer"):
        assert variable not in template, variable
    assert not re.search(r"\$request\b(?!_)", template)
    for variable in ("$request_method", "$uri", "$status", "$request_time", "$request_id", "$remote_addr"):
        assert variable in template, variable
    assert "$upstream_response_time" in template
    # With every variable replaced by a value, the line is one JSON object.
    assert isinstance(json.loads(re.sub(r"\$[a-z_0-9]+", "1", template)), dict)
    assert http.child("access_log").args == ["/dev/stdout", "json"]


def test_it_names_no_other_log_format(config: list[Directive]) -> None:
    for directive in walk(config):
        if directive.name == "access_log":
            assert directive.args in (["/dev/stdout", "json"], ["off"]), directive.args
