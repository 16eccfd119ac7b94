"""The authorization matrix, cell by cell, and the proof that it covers every route."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from tests.authz.matrix import ALL, ANONYMOUS, MATRIX, Entry
from tests.conftest import client_for
from tests.personas import World, build_world

pytestmark = pytest.mark.django_db


def named_routes(resolver: URLResolver | None = None, namespace: str = "") -> Iterator[tuple[str, str]]:
    """(route, name) of every URL pattern, names qualified by their namespaces."""
    resolver = resolver or get_resolver()
    for entry in resolver.url_patterns:
        if isinstance(entry, URLResolver):
            inner = f"{namespace}{entry.namespace}:" if entry.namespace else namespace
            yield from named_routes(entry, inner)
        elif isinstance(entry, URLPattern):
            yield str(entry.pattern), f"{namespace}{entry.name}" if entry.name else ""


def test_it_covers_every_route() -> None:
    routes = list(named_routes())
    unnamed = [route for route, name in routes if not name]
    assert not unnamed, f"routes without a name cannot be in the matrix: {unnamed}"
    covered = {entry.name for entry in MATRIX}
    missing = sorted({name for _, name in routes} - covered)
    assert not missing, f"routes missing from the authorization matrix: {missing}"
    stale = sorted(covered - {name for _, name in routes})
    assert not stale, f"matrix entries for routes that no longer exist: {stale}"


def test_it_states_every_persona_for_every_entry() -> None:
    for entry in MATRIX:
        assert set(entry.expect) == set(ALL), f"{entry.name} {entry.method}: {set(ALL) ^ set(entry.expect)}"
        for persona in ALL:
            for ownership in entry.ownerships:
                entry.status(persona, ownership)  # a missing ownership raises KeyError


CELLS = [
    pytest.param(entry, persona, ownership, id=f"{entry.name}-{entry.method}-{persona}-{ownership}")
    for entry in MATRIX
    for persona in ALL
    for ownership in entry.ownerships
]


@pytest.fixture
def world(db: None) -> World:
    return build_world()


@pytest.mark.parametrize(("entry", "persona", "ownership"), CELLS)
def test_it_answers_as_the_matrix_says(world: World, entry: Entry, persona: str, ownership: str) -> None:
    client = Client() if persona == ANONYMOUS else client_for(world.users[persona])
    url = reverse(entry.name, kwargs=entry.kwargs(world, persona, ownership))
    response = client.post(url, entry.data) if entry.method == "POST" else client.generic(entry.method, url)
    expected = entry.status(persona, ownership)
    assert response.status_code == expected, f"{entry.method} {url} as {persona} ({ownership})"
    if persona == ANONYMOUS and expected == 302:
        assert response["Location"].startswith(reverse("accounts:login"))
