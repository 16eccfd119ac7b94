"""The people of the test suites: one per shipped role, plus an analyst of another team.

alice administers, bob and charlie (analyst and lead) work the card-fraud team's queue, oscar is
an analyst of the AML team, dana manages, erin audits and frank holds no role. Each case worker
has a case assigned to them in the *other* team's queue, so "own" access comes from the
assignment alone, never from the team.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from accounts.approvals import request_change
from accounts.models import ApprovalRequest, Membership, Role, RolePermission, Team, User
from accounts.permissions import Perm
from audit.events import EventType
from audit.ledger import integrate
from audit.models import Event
from cases.models import Case, Queue
from tests.factories import make_user

PERSONAS: dict[str, tuple[str, tuple[str, ...]]] = {
    "admin": ("alice", ("admin",)),
    "analyst": ("bob", ("analyst",)),
    "lead": ("charlie", ("lead",)),
    "manager": ("dana", ("manager",)),
    "auditor": ("erin", ("auditor",)),
    "roleless": ("frank", ()),
    "other_analyst": ("oscar", ("analyst",)),
}
TEAMS = {"analyst": "cards", "lead": "cards", "other_analyst": "aml"}
CASEWORKERS = tuple(TEAMS)
MISSING_PK = 2**31 - 1


@dataclass
class World:
    users: dict[str, User]
    teams: dict[str, Team]
    queues: dict[str, Queue]
    approval: ApprovalRequest
    event_seq: int
    # Per case worker: ownership ("own", "team", "other team") -> a case.
    cases: dict[str, dict[str, Case]] = field(default_factory=dict)

    def case_for(self, persona: str, ownership: str) -> int:
        """The id of a case with that relation to ``persona`` (a missing id for "none")."""
        if ownership == "none":
            return MISSING_PK
        # Personas who work no case see bob's cases: the view must refuse them all the same.
        return self.cases.get(persona, self.cases["analyst"])[ownership].pk


def build_world() -> World:
    users = {persona: make_user(username, roles) for persona, (username, roles) in PERSONAS.items()}
    teams = {
        slug: Team.objects.create(slug=slug, name=name)
        for slug, name in (("cards", "Card fraud"), ("aml", "Anti-money laundering"))
    }
    queues = {
        slug: Queue.objects.create(slug=slug, name=f"{team.name} queue", team=team) for slug, team in teams.items()
    }
    for persona, team in TEAMS.items():
        Membership.objects.create(team=teams[team], user=users[persona])
    trainee = Role.objects.create(slug="trainee", name="Trainee analyst")
    RolePermission.objects.create(role=trainee, permission=Perm.WORK_CASES)
    # alice asks for frank to become a lead: a pending four-eyes request.
    approval = request_change(
        "role_change",
        {"user": users["roleless"].pk, "role": "lead", "change": "grant"},
        acting_user=users["admin"],
        reason="cover",
    )
    integrate()  # a test's transaction never commits: sequence the pending events by hand
    event_seq = Event.objects.filter(event_type=EventType.APPROVAL_REQUESTED).values_list("seq", flat=True).get()
    world = World(users, teams, queues, approval, event_seq)
    for persona, team in TEAMS.items():
        other = "aml" if team == "cards" else "cards"
        world.cases[persona] = {
            "own": Case.objects.create(title=f"{persona}'s case", queue=queues[other], assignee=users[persona]),
            "team": Case.objects.create(title=f"{team} case", queue=queues[team]),
            "other team": Case.objects.create(title=f"{other} case", queue=queues[other]),
        }
    return world
