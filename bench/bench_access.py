"""The one door at scale: ``restrict()`` against the plainest query that could answer the same page.

A scratch database holds 100,000 cases in 100 queues of 50 teams, 400 case workers (8 a team),
and 20,000 explicit grants (guardian, direct foreign key). For one analyst:

1. ``restrict_page``: the workspace's first page (50 cases, most urgent first) and its count,
   through ``Case.objects.restrict(user, "view")`` (team membership, assignment and grants, with
   the permission check). Ceiling: the same page and count filtered on the analyst's team's
   queues alone, with the ids known in advance: what a query that knew the answer would cost.
2. ``get_case_for_user``: one case through the door, against ``Case.objects.get(pk=...)``.
"""

from __future__ import annotations

import random
import statistics
import time
from collections.abc import Callable

from bench.database import environment, manage, measure_in_child, scratch_database
from bench.figures import Figure, emit

CASES = 100_000
TEAMS = 50
QUEUES_PER_TEAM = 2
WORKERS_PER_TEAM = 8
GRANTS = 20_000
ROUNDS = 300


def _best_median(work: Callable[[], object]) -> float:
    """Median seconds of one call over ``ROUNDS`` calls, after a warm-up."""
    for _ in range(20):
        work()
    times = []
    for _ in range(ROUNDS):
        start = time.perf_counter()
        work()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def populate() -> None:
    from django.contrib.auth.models import Permission

    from accounts.models import Membership, Role, RoleAssignment, Team, User
    from cases.models import Case, CaseUserObjectPermission, Queue

    rng = random.Random(5)
    analyst = Role.objects.get(slug="analyst")
    teams = Team.objects.bulk_create([Team(slug=f"team-{t}", name=f"Team {t}") for t in range(TEAMS)])
    queues = Queue.objects.bulk_create(
        [Queue(slug=f"q-{t.pk}-{n}", name=f"Queue {t.pk}-{n}", team=t) for t in teams for n in range(QUEUES_PER_TEAM)]
    )
    users = User.objects.bulk_create(
        [User(username=f"worker-{t}-{n}") for t in range(TEAMS) for n in range(WORKERS_PER_TEAM)]
    )
    RoleAssignment.objects.bulk_create([RoleAssignment(user=u, role=analyst) for u in users])
    Membership.objects.bulk_create([Membership(team=teams[i // WORKERS_PER_TEAM], user=u) for i, u in enumerate(users)])
    cases = Case.objects.bulk_create(
        [
            Case(
                title=f"case {n}",
                queue=rng.choice(queues),
                assignee=rng.choice(users) if rng.random() < 0.5 else None,
                priority=rng.randint(1, 4),
            )
            for n in range(CASES)
        ],
        batch_size=5000,
    )
    view = Permission.objects.get(codename="view_case")
    CaseUserObjectPermission.objects.bulk_create(
        [
            CaseUserObjectPermission(user=rng.choice(users), permission=view, content_object=rng.choice(cases))
            for _ in range(GRANTS)
        ],
        batch_size=5000,
        ignore_conflicts=True,
    )


def measure_main() -> None:
    """Run in a child process on the populated scratch database: prints the figures as JSON."""
    from django.core.paginator import Paginator
    from django.db import connection

    from accounts.models import User
    from cases.models import Case, get_case_for_user

    populate()
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    user = User.objects.get(username="worker-7-3")
    team_queues = list(user.teams.get().queues.values_list("pk", flat=True))
    reachable = Case.objects.restrict(user, "view")
    one = reachable.order_by("pk").values_list("pk", flat=True).first()
    assert one is not None

    def restricted() -> None:
        fresh = User.objects.get(pk=user.pk)  # a request's user: permissions resolved again
        page = Paginator(Case.objects.restrict(fresh, "view").select_related("queue", "assignee"), 50).page(1)
        list(page.object_list)

    def ceiling() -> None:
        User.objects.get(pk=user.pk)
        page = Paginator(Case.objects.filter(queue__in=team_queues).select_related("queue", "assignee"), 50).page(1)
        list(page.object_list)

    def through_door() -> None:
        get_case_for_user(User.objects.get(pk=user.pk), one)

    def by_pk() -> None:
        User.objects.get(pk=user.pk)
        Case.objects.select_related("queue", "assignee").get(pk=one)

    for name, work, base in (("restrict_page", restricted, ceiling), ("get_case_for_user", through_door, by_pk)):
        value, top = _best_median(work) * 1000, _best_median(base) * 1000
        emit(Figure.latency(name, value, "ms", top))


def run() -> list[Figure]:
    with scratch_database("bench_access") as database:
        env = environment(database)
        manage(env, "migrate", "--noinput", "--verbosity", "0")
        return measure_in_child(env, "bench.bench_access.measure_main")
