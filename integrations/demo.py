"""The demo sales org: a seeded, believable CRM generated on the fly, the embedded default source.

Every account is generated from its own `random.Random`, seeded by (seed, account number, purpose), so
each stream can be produced independently and lazily, account by account, in flat memory: the same
(seed, accounts, today) always yields exactly the same records.

Each account gets an *archetype* that decides its volume of activity, its deals and whether (and how
well) a strategy covers it. Archetypes are dealt in a fixed cycle of 30 slots, so every 30 consecutive
accounts hold the same mix and the review always has something true to find:

| slots | archetype | what the review should see |
| ---: | --- | --- |
| 5 | covered | an active strategy with the recent activity linked: not flagged |
| 2 | unlinked | an active strategy, but the last weeks' busy activity is not linked to it |
| 1 | overdue | an active, well-linked strategy whose review date has passed |
| 1 | stale | an active strategy with nothing linked (or done) in the last 60 days |
| 1 | lapsed | a draft, achieved or abandoned strategy on a moderately active account |
| 3 | busy | no strategy and a lot of recent activity on an open deal |
| 1 | lone_contract | a quiet account with no strategy where a contract just went out |
| 8 | steady | no strategy, light activity spread over the six months |
| 8 | quiet | a handful of touches in six months |

The standard org (300 accounts or fewer) is rich: about 15,000 calls. Larger orgs (`demo --scale N`)
use the same generators at about 20 activities per account, with about 25 accounts per rep and about
8 reps per manager.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from integrations.base import (
    STREAMS,
    AccountRecord,
    ActivityRecord,
    Batch,
    OpportunityRecord,
    Record,
    SourceReport,
    StrategyRecord,
    UserRecord,
)

DEFAULT_SEED = 20261124
STANDARD_ACCOUNTS = 300
# Six months of activity, as whole days ending with the day before `today`: a demo loaded at any hour
# of the day then holds no activity still to come (a call "in 17 hours" on the account page).
WINDOW_DAYS = 183
BATCH_SIZE = 2000
EMAIL_DOMAIN = "northwind-demo.com"
CRM_URL = "https://demo.stratlink.invalid"

# The standard org's shape; larger orgs keep about these spans of control.
STANDARD_REPS = 12
STANDARD_MANAGERS = 3
ACCOUNTS_PER_REP = 25
REPS_PER_MANAGER = 8
# Brings a scaled org from the standard org's ~100 activities per account to about 20.
SCALED_VOLUME = 0.172

# The review's defaults (DESIGN.md): the archetypes are tuned so that they fire, or not, on purpose.
REVIEW_WINDOW = 30
STALE_DAYS = 60


@dataclass(frozen=True, slots=True)
class _Archetype:
    calls: tuple[int, int]  # calls over the six months in the standard org
    skew: float  # above 1 puts more of the activity in the recent weeks
    recent: tuple[int, int]  # extra calls, emails and meetings in the last 25 days
    quiet_days: int  # the regular activity stays older than this many days
    open_deal: float  # chance of an open opportunity
    won: float  # chance of a deal won within the six months
    contract: bool  # a deal won within the six months comes with a contract activity
    strategy: str | None  # None, or how its strategy is written and linked


ARCHETYPES: dict[str, _Archetype] = {
    "covered": _Archetype((45, 100), 1.4, (3, 6), 0, 0.9, 0.35, True, "covered"),
    "unlinked": _Archetype((90, 160), 1.8, (7, 12), 0, 1.0, 0.3, True, "unlinked"),
    "overdue": _Archetype((30, 70), 1.2, (2, 4), 0, 0.7, 0.3, False, "covered"),
    "stale": _Archetype((12, 30), 1.0, (0, 0), 65, 0.3, 0.2, False, "stale"),
    "lapsed": _Archetype((10, 30), 1.0, (0, 0), 0, 0.4, 0.4, False, "lapsed"),
    "busy": _Archetype((160, 280), 2.0, (8, 14), 0, 1.0, 0.35, True, None),
    "lone_contract": _Archetype((2, 6), 1.0, (0, 0), 0, 0.0, 1.0, True, None),
    "steady": _Archetype((5, 14), 1.0, (0, 0), 0, 0.4, 0.25, False, None),
    "quiet": _Archetype((1, 5), 1.0, (0, 0), 0, 0.1, 0.1, False, None),
}
_SLOT_COUNTS = {
    "covered": 5,
    "unlinked": 2,
    "overdue": 1,
    "stale": 1,
    "lapsed": 1,
    "busy": 3,
    "lone_contract": 1,
    "steady": 8,
    "quiet": 8,
}
# Account i takes slot (7i + seed) mod 30: any 30 consecutive accounts hold every slot once.
SLOTS: tuple[str, ...] = tuple(name for name, count in _SLOT_COUNTS.items() for _ in range(count))


def _words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


FIRST_NAMES = _words(
    "Avery Blake Camila Dev Elena Farah Gabriel Hana Isaac Jonah Keiko Leon Maya Nadia Omar Priya Quinn "
    "Rafael Sofia Tariq Uma Victor Wen Ximena Yusuf Zoe Amara Bruno Chloe Diego Esme Felix Grace Hugo Ines "
    "Jae Kofi Lena Marco Nina Oscar Paula Ravi Sara Theo Ursula Vera Wyatt Yara Zane Aisha Ben Clara Dmitri "
    "Eva Finn Greta Hiro Ivy Jonas Kira Luca Mei Noah"
)
LAST_NAMES = _words(
    "Abara Bergstrom Castillo Dubois Eriksen Fontaine Garcia Haddad Ibarra Jensen Kowalski Lindqvist Moreau "
    "Nakamura Okafor Petrov Quintero Rossi Santos Tanaka Ueda Varga Weber Xu Yilmaz Zielinski Achebe "
    "Brennan Chen Delgado Engel Ferreira Gallagher Holm Iyer Jovanovic Kim Larsen Mendes Novak Ortiz Park "
    "Quinlan Reyes Schmidt Thornton Ulloa Vasquez Whitaker Young Zamora Alvarez Becker Costa Dalton Ekstrom "
    "Fischer Grant Hughes Ito Jansen Keller Lopez Murphy"
)
TITLES = (
    "CFO",
    "COO",
    "CIO",
    "VP Operations",
    "IT Director",
    "Head of Procurement",
    "Controller",
    "VP Finance",
    "Operations Manager",
    "Director of Strategy",
)
# Invented place-like names ("Fernwick", "Quillmoor"); with an industry word they make the account names.
_NAME_STARTS = _words(
    "Amber Ash Bell Birch Bram Copper Crest Drift Elm Ember Fern Glen Grey Hollow Iron Lark Linden Marl "
    "Moon Alder Pebble Quill Raven Salt Silver Stone Tall Thistle Wren Yarrow"
)
_NAME_ENDS = _words("brook vale mere wick stead holm combe moor hurst fold thorn field")
_REGIONS = ("West", "East", "North", "South", "Central", "Pacific", "Atlantic", "Midwest", "Coastal")


@dataclass(frozen=True, slots=True)
class _Industry:
    words: tuple[str, ...]
    offerings: tuple[str, ...]
    theme: str


INDUSTRIES: dict[str, _Industry] = {
    "Manufacturing": _Industry(
        ("Manufacturing", "Industries", "Fabrication", "Components", "Machining"),
        ("Predictive maintenance pilot", "Plant-wide rollout", "Line monitoring expansion"),
        "downtime",
    ),
    "Healthcare": _Industry(
        ("Health", "Clinics", "Medical Group", "Care Partners", "Diagnostics"),
        ("Scheduling platform", "Clinic rollout phase 2", "Patient intake module"),
        "patients",
    ),
    "Financial Services": _Industry(
        ("Capital", "Credit Union", "Financial", "Insurance", "Lending"),
        ("Close automation", "Audit readiness package", "Reconciliation module"),
        "close",
    ),
    "Retail": _Industry(
        ("Outfitters", "Markets", "Home Goods", "Apparel", "Grocers"),
        ("Replenishment forecasting", "Store rollout", "Inventory analytics renewal"),
        "stock",
    ),
    "Logistics": _Industry(
        ("Logistics", "Freight", "Distribution", "Transport", "Shipping"),
        ("Route planning rollout", "Fleet analytics expansion", "Warehouse visibility pilot"),
        "delivery",
    ),
    "Software": _Industry(
        ("Software", "Analytics", "Labs", "Cloud", "Systems"),
        ("Customer health platform", "Onboarding analytics", "Enterprise tier upgrade"),
        "churn",
    ),
    "Energy": _Industry(
        ("Energy", "Power", "Utilities", "Solar", "Renewables"),
        ("Field service scheduling", "Asset monitoring pilot", "Crew mobile app rollout"),
        "field",
    ),
    "Education": _Industry(
        ("Academy", "College", "Learning", "Schools", "Institute"),
        ("Student success platform", "Advising module", "Campus-wide license"),
        "retention",
    ),
    "Hospitality": _Industry(
        ("Hotels", "Resorts", "Hospitality", "Restaurants", "Inns"),
        ("Guest feedback platform", "Property rollout", "Revenue analytics add-on"),
        "guests",
    ),
    "Construction": _Industry(
        ("Builders", "Construction", "Contractors", "Engineering", "Homes"),
        ("Project controls rollout", "Equipment tracking pilot", "Site reporting module"),
        "projects",
    ),
    "Food & Beverage": _Industry(
        ("Foods", "Brewing", "Bakeries", "Farms", "Provisions"),
        ("Demand planning pilot", "Plant scheduling module", "Waste tracking rollout"),
        "stock",
    ),
    "Telecommunications": _Industry(
        ("Telecom", "Networks", "Communications", "Broadband", "Wireless"),
        ("Churn analytics platform", "Install scheduling rollout", "Care desk expansion"),
        "churn",
    ),
}
_INDUSTRY_NAMES = tuple(INDUSTRIES)
_INDUSTRY_WEIGHTS = (14, 10, 9, 10, 9, 12, 6, 5, 6, 7, 7, 5)

OPEN_STAGES = ("Prospecting", "Qualification", "Proposal", "Negotiation")
_OPEN_STAGE_WEIGHTS = (15, 25, 30, 30)
CLOSED_WON = "Closed Won"
CLOSED_LOST = "Closed Lost"

# Subjects: {c} a contact's first name, {t} their title, {o} an offering, {i} the industry.
_SUBJECTS: dict[tuple[str, str], tuple[str, ...]] = {
    ("call", "outbound"): (
        "Discovery call with the {t}",
        "Intro call with {c} ({t})",
        "Pricing objection follow-up",
        "Follow-up on the proposal with {c}",
        "Check-in call with {c}",
        "Left voicemail for {c}",
        "Call with {c} about the rollout timeline",
        "Negotiation call with procurement",
        "Renewal terms call with the {t}",
        "Call to confirm next steps with {c}",
        "Reference call setup with {c}",
        "Qualification call: budget and timing",
    ),
    ("call", "inbound"): (
        "{c} called about renewal terms",
        "Inbound: the {t} asked about the integration timeline",
        "{c} called with questions on the proposal",
        "Support escalation from {c}",
        "{c} returned our call",
        "Inbound call from the {t}: budget update",
        "{c} called to discuss pilot results",
        "Inbound: pricing request for more sites",
    ),
    ("email", "outbound"): (
        "Sent revised proposal",
        "Sent {i} case study to {c}",
        "Recap of today's meeting",
        "Pricing options for {o}",
        "Sent mutual action plan",
        "Intro email to the {t}",
        "Sent security questionnaire answers",
        "Shared ROI model with {c}",
        "Meeting request for the {t}",
        "Next steps after the demo",
    ),
    ("email", "inbound"): (
        "Re: revised proposal, questions from legal",
        "{c} asked for customer references",
        "RFP clarification questions",
        "Re: pricing options for {o}",
        "{c}: the team's feedback on the pilot",
        "Procurement asked for updated terms",
        "Re: recap, two corrections from {c}",
        "The {t} forwarded our deck internally",
    ),
    ("meeting", "outbound"): (
        "QBR with the {t}",
        "Onsite workshop with {c}'s team",
        "Product demo for the {t}",
        "Exec alignment with the {t}",
        "Pilot kickoff with {c}",
        "Solution design session: {o}",
        "Contract review with procurement",
        "Lunch with {c}",
    ),
    ("meeting", "inbound"): (
        "Customer-requested review with the {t}",
        "{c} asked for a working session on {o}",
        "Pilot results readout requested by {c}",
    ),
    ("task", "unknown"): (
        "QBR prep",
        "Prepare ROI model for {c}",
        "Update mutual action plan",
        "Draft pricing proposal for {o}",
        "Answer security questionnaire",
        "Book onsite visit with {c}",
        "Research the new {t}",
        "Prepare renewal quote",
    ),
    ("note", "unknown"): (
        "Notes: {c} is our champion",
        "Budget cycle starts next quarter",
        "Competitor in the deal: the incumbent vendor",
        "Notes from the call: three decision makers",
        "{c} is moving to a new role",
        "Legal review takes about three weeks here",
        "Notes: pilot success criteria agreed with {c}",
    ),
    ("contract", "outbound"): (
        "Order form sent for signature: {o}",
        "Master services agreement signed",
        "Renewal contract signed",
        "Statement of work: {o}",
        "Signed order form: {o}",
    ),
}


@dataclass(frozen=True, slots=True)
class _Theme:
    objective: str
    customer_view: str
    approach: str
    success_measure: str


# Written the way a good rep writes them: an outcome for the customer, their view, how we spend our time.
# {a} account, {c} contact, {t} title, {p} a percentage, {target} the target month.
THEMES: dict[str, _Theme] = {
    "downtime": _Theme(
        "{a} cuts unplanned downtime on its production lines by {p}% by {target}, so it can promise "
        "shorter lead times to its own customers.",
        "{c}, the {t}, is measured on on-time delivery and lost two large orders to late shipments this "
        "year. Maintenance is seen as a cost centre, so new spend has to pay for itself within the budget "
        "year.",
        "Prove the gain on one line before asking for the plant: agree a downtime baseline with maintenance "
        "and finance, run a 60-day pilot on their own data, and let their engineers own the results. Our "
        "time goes to the pilot line and the finance case, not to prospecting across the other sites.",
        "Unplanned downtime on the pilot line down {p}% against the agreed baseline for two consecutive "
        "months, and a funded rollout plan for the remaining lines.",
    ),
    "patients": _Theme(
        "{a} reduces patient wait times at its outpatient clinics by {p}% by {target}, so clinicians spend "
        "their day on care rather than on rescheduling.",
        "{c}, the {t}, has a board mandate to improve patient satisfaction scores and is wary of another "
        "system the front desk has to learn. Nurse turnover is their real worry.",
        "Anchor everything on the two busiest clinics: measure today's wait times with their own data, "
        "involve the front-desk leads in the design, and build the business case with finance around "
        "staff hours saved. We stay out of the IT replacement debate.",
        "Median wait time at the two pilot clinics down {p}% for a full quarter, and the {t} sponsoring "
        "the rollout to the remaining clinics.",
    ),
    "close": _Theme(
        "{a} shortens its month-end close from nine days to five and passes its next audit with no "
        "findings on reconciliations, by {target}.",
        "{c}, the {t}, carries the audit risk personally after last year's late filing. The team is "
        "stretched and distrusts tools that promise automation and deliver more spreadsheets.",
        "Earn trust on the reconciliations that hurt most: map the three slowest accounts with their "
        "controllers, automate those first, and let the audit committee see the result in its own terms. "
        "Wider finance transformation waits until that works.",
        "Close completed in five working days for two consecutive months, and zero reconciliation findings "
        "in the next external audit.",
    ),
    "stock": _Theme(
        "{a} lowers stock-outs on its top 500 products by {p}% by {target} without raising inventory, so "
        "stores stop losing sales at peak times.",
        "{c}, the {t}, is squeezed between the stores complaining about empty shelves and the CFO "
        "pushing working capital down. Previous forecasting projects stalled in IT.",
        "Start where the pain is visible: the fifty products with the most lost sales, measured with "
        "their own point-of-sale data. Merchandising owns the targets, we own the model, and IT only "
        "signs off the data feed.",
        "Stock-outs on the top 500 products down {p}% over a full season with inventory value flat or lower.",
    ),
    "delivery": _Theme(
        "{a} raises on-time delivery from 88% to 96% by {target}, so it can keep its two largest "
        "shippers at renewal.",
        "{c}, the {t}, knows the big contracts come up for renewal next year and that late deliveries are "
        "the shippers' main complaint. Dispatchers distrust planning tools after a failed rollout.",
        "Win the dispatchers first: prove better routes on one depot with their own constraints, keep "
        "their overrides in the plan, and give the {t} weekly on-time figures to share with the shippers.",
        "On-time delivery at or above 96% for eight consecutive weeks across the pilot depot, and the "
        "rollout approved for all depots.",
    ),
    "churn": _Theme(
        "{a} reduces first-year customer churn by {p}% by {target}, so growth stops leaking out of the "
        "installed base.",
        "{c}, the {t}, has the churn number in their objectives this year and suspects onboarding is where "
        "customers give up, but has no data to prove it.",
        "Make the problem measurable before selling the cure: connect their onboarding data, show which "
        "steps predict churn, and agree the target with customer success. We spend our time with the "
        "people who own retention, not with the tool evaluators.",
        "First-year churn down {p}% on the cohort onboarded after go-live, measured against the previous "
        "year's cohort.",
    ),
    "field": _Theme(
        "{a} cuts repeat truck rolls by {p}% by {target}, so crews fix more faults on the first visit and "
        "overtime comes down.",
        "{c}, the {t}, faces a regulator scorecard on outage times and a union wary of tracking tools. "
        "Savings must show in overtime, where finance looks.",
        "Build the case on one service region with the crew leads involved from the start: baseline repeat "
        "visits, give crews the asset history on their phones, and report savings in overtime hours.",
        "Repeat truck rolls in the pilot region down {p}% over two quarters, with overtime hours lower "
        "than the same period last year.",
    ),
    "retention": _Theme(
        "{a} improves first-year student retention by {p}% by {target}, so fewer students leave before "
        "their second year.",
        "{c}, the {t}, answers to the board on retention and enrolment revenue. Advisors are overloaded "
        "and skeptical of dashboards that add work.",
        "Focus on the advisors' caseload: identify the students most at risk with their own data, give "
        "advisors one list a week, and measure the outcome by cohort with institutional research.",
        "First-year retention up {p}% for the first cohort served, confirmed by institutional research.",
    ),
    "guests": _Theme(
        "{a} raises its guest satisfaction score by {p}% by {target}, so it can lift room rates without "
        "losing repeat guests.",
        "{c}, the {t}, sees review scores driving bookings and rates, and knows property managers ignore "
        "survey reports that arrive a month late.",
        "Give property managers feedback while the guest is still on site: start with three properties, "
        "agree the service recovery steps with their managers, and report results in rate and repeat "
        "bookings.",
        "Guest satisfaction up {p}% at the three pilot properties over a season, with average daily rate "
        "held or higher.",
    ),
    "projects": _Theme(
        "{a} reduces cost overruns on its commercial projects by {p}% by {target}, so bids can be sharper "
        "without eroding margin.",
        "{c}, the {t}, watched two projects run over budget last year and knows site reports reach the "
        "office too late to act on.",
        "Prove it on two live projects: put daily site reporting in the project managers' hands, compare "
        "committed cost against budget weekly, and let finance validate the savings.",
        "Cost overruns on the two pilot projects down {p}% against the company's average, and the "
        "approach written into the next bid.",
    ),
}


@dataclass(frozen=True, slots=True)
class _Plan:
    """What an account is, drawn once from its own seed; every stream of the account starts here."""

    index: int
    external_id: str
    archetype: str
    rep: int
    name: str
    industry: str
    revenue: int
    contacts: tuple[tuple[str, str], ...]
    strategy_status: str | None
    strategy_start: int  # days ago the strategy's work began (its first linkable activity)


@dataclass(frozen=True, slots=True)
class _Deal:
    external_id: str
    name: str
    stage: str
    amount: int
    close_date: date
    opened_days_ago: int
    closed_days_ago: int | None  # None while the deal is open
    won: bool
    offering: str


@dataclass(slots=True)
class _Draft:
    days_ago: int
    minute: int
    kind: str
    direction: str
    subject: str
    owner: str
    opportunity: str | None


class DemoSource:
    """A realistic generated sales org; the default source when no CRM is connected."""

    name = "demo"

    def __init__(
        self, accounts: int = STANDARD_ACCOUNTS, seed: int = DEFAULT_SEED, today: date | None = None
    ) -> None:
        if accounts < 1:
            raise ValueError("the demo org needs at least one account")
        self.accounts = accounts
        self.seed = seed
        self.today = today or datetime.now(UTC).date()
        self.report = SourceReport()
        self.rich = accounts <= STANDARD_ACCOUNTS
        if self.rich:
            self.reps, self.managers, self.reps_per_manager = STANDARD_REPS, STANDARD_MANAGERS, 4
        else:
            self.reps = math.ceil(accounts / ACCOUNTS_PER_REP)
            self.managers = math.ceil(self.reps / REPS_PER_MANAGER)
            self.reps_per_manager = REPS_PER_MANAGER
        self._midnights = [
            datetime.combine(self.today - timedelta(days=days_ago + 1), time(), UTC)
            for days_ago in range(WINDOW_DAYS)
        ]
        self._inbound_shares: dict[int, float] = {}
        # Every start with every end, shuffled once: the first 360 accounts all have different names.
        words = [start + end for end in _NAME_ENDS for start in _NAME_STARTS]
        self._names = random.Random(f"{seed}/names").sample(words, len(words))

    @classmethod
    def from_config(
        cls, config: Mapping[str, Any], scale: int | None = None, today: date | None = None, **_: Any
    ) -> DemoSource:
        """Build the org of `scale` accounts, else of DEMO_SCALE accounts, else the standard one."""
        seed = int(config.get("DEMO_SEED", DEFAULT_SEED))
        accounts = scale or int(config.get("DEMO_SCALE") or 0) or STANDARD_ACCOUNTS
        return cls(accounts=accounts, seed=seed, today=today)

    def streams(self) -> Sequence[str]:
        """Return the streams in sync order."""
        return STREAMS

    def read(self, stream: str, cursor: str | None, *, full: bool) -> Iterator[Batch]:
        """Yield the whole stream in batches; the demo keeps no cursor."""
        generators: dict[str, Callable[[], Iterator[Record]]] = {
            "users": self.users,
            "accounts": self.account_records,
            "opportunities": self.opportunities,
            "activities": self.activities,
            "strategies": self.strategies,
        }
        if stream not in generators:
            raise ValueError(f"the demo has no stream {stream!r}")
        records: list[Record] = []
        for record in generators[stream]():
            records.append(record)
            if len(records) >= BATCH_SIZE:
                yield Batch(stream, records)
                records = []
        if records:
            yield Batch(stream, records)

    # Users ---------------------------------------------------------------------------------------

    @property
    def user_count(self) -> int:
        return 1 + self.managers + self.reps + 1

    def rep_id(self, rep: int) -> str:
        return _user_id(2 + self.managers + rep)

    def manager_of(self, rep: int) -> str:
        return _user_id(2 + rep // self.reps_per_manager)

    def users(self) -> Iterator[UserRecord]:
        """Yield the VP, the managers, the reps and the admin, each with a role and a CRM id."""
        combinations = len(FIRST_NAMES) * len(LAST_NAMES)
        rng = random.Random(f"{self.seed}/users")
        order = rng.sample(range(combinations), combinations)
        admin = self.user_count
        for number in range(1, self.user_count + 1):
            pick = order[(number - 1) % combinations]
            first, last = FIRST_NAMES[pick % len(FIRST_NAMES)], LAST_NAMES[pick // len(FIRST_NAMES)]
            repeat = (number - 1) // combinations
            email = f"{first}.{last}{repeat or ''}@{EMAIL_DOMAIN}".lower()
            if number == 1:
                role, manager = "manager", None
            elif number <= 1 + self.managers:
                role, manager = "manager", _user_id(1)
            elif number < admin:
                role, manager = "rep", self.manager_of(number - 2 - self.managers)
            else:
                role, manager = "admin", None
            yield UserRecord(_user_id(number), email, f"{first} {last}", role, manager)

    def _inbound_share(self, rep: int) -> float:
        """Return how often this rep's calls are the customer's: the dialogue ratio differs by rep."""
        share = self._inbound_shares.get(rep)
        if share is None:
            share = random.Random(f"{self.seed}/rep/{rep}").uniform(0.15, 0.6)
            self._inbound_shares[rep] = share
        return share

    # Accounts ------------------------------------------------------------------------------------

    def plan(self, index: int) -> _Plan:
        """Draw account `index`'s archetype, owner, name, industry, size and contacts."""
        rng = random.Random(f"{self.seed}/{index}/account")
        archetype = SLOTS[(index * 7 + self.seed) % len(SLOTS)]
        industry = rng.choices(_INDUSTRY_NAMES, weights=_INDUSTRY_WEIGHTS)[0]
        # Many small companies, a few very large ones: log-normal around $30M.
        revenue = min(25_000_000_000, max(800_000, int(math.exp(rng.gauss(math.log(30e6), 1.4)))))
        word = self._names[index % len(self._names)]
        name = f"{word} {rng.choice(INDUSTRIES[industry].words)}"
        if index >= len(self._names):
            name += f" {_REGIONS[(index // len(self._names)) % len(_REGIONS)]}"
        contacts = tuple((rng.choice(FIRST_NAMES), title) for title in rng.sample(TITLES, 3))
        status: str | None = None
        kind = ARCHETYPES[archetype].strategy
        if kind == "lapsed":
            status = rng.choice(("draft", "achieved", "abandoned"))
        elif kind is not None:
            status = "active"
        return _Plan(
            index=index,
            external_id=f"DA{index + 1:06d}",
            archetype=archetype,
            rep=rng.randrange(self.reps),
            name=name,
            industry=industry,
            revenue=_two_digits(revenue),
            contacts=contacts,
            strategy_status=status,
            strategy_start=rng.randint(80, 175),
        )

    def account_records(self) -> Iterator[AccountRecord]:
        """Yield every account with its owner, industry, size and deep link."""
        for index in range(self.accounts):
            plan = self.plan(index)
            yield AccountRecord(
                external_id=plan.external_id,
                name=plan.name,
                owner_external_id=self.rep_id(plan.rep),
                industry=plan.industry,
                annual_revenue=Decimal(plan.revenue),
                url=f"{CRM_URL}/accounts/{plan.external_id}",
            )

    # Opportunities -------------------------------------------------------------------------------

    def deals(self, plan: _Plan) -> list[_Deal]:
        """Draw the account's deals: perhaps one open, perhaps one won and one lost in the six months."""
        rng = random.Random(f"{self.seed}/{plan.index}/deals")
        shape = ARCHETYPES[plan.archetype]
        offerings = INDUSTRIES[plan.industry].offerings
        drawn: list[tuple[str, int, int | None, bool]] = []
        if rng.random() < shape.open_deal:
            stage = rng.choices(OPEN_STAGES, weights=_OPEN_STAGE_WEIGHTS)[0]
            drawn.append((stage, rng.randint(15, 150), None, False))
        if plan.archetype == "lone_contract":
            # The contract must fall inside the review's window to be the lone contract it is meant to be.
            drawn.append((CLOSED_WON, 0, rng.randint(2, REVIEW_WINDOW - 6), True))
        elif rng.random() < shape.won:
            drawn.append((CLOSED_WON, 0, rng.randint(3, WINDOW_DAYS - 8), True))
        if rng.random() < 0.35:
            drawn.append((CLOSED_LOST, 0, rng.randint(10, WINDOW_DAYS - 5), False))
        deals = []
        chosen = rng.sample(offerings, len(drawn))
        for number, (stage, opened, closed, won) in enumerate(drawn, start=1):
            if closed is not None:
                opened = closed + rng.randint(30, 120)
                close_date = self.today - timedelta(days=closed + 1)  # the day of its contract
            else:
                close_date = self.today + timedelta(days=rng.randint(10, 120))
            offering = chosen[number - 1]
            # Deal size grows slower than the customer: about $8k at $1M revenue, $360k at $1B.
            amount = _two_digits(int(8_000 * (plan.revenue / 1e6) ** 0.55 * rng.uniform(0.5, 1.6)))
            deals.append(
                _Deal(
                    external_id=f"DO{plan.index + 1:06d}-{number}",
                    name=f"{plan.name}: {offering}",
                    stage=stage,
                    amount=amount,
                    close_date=close_date,
                    opened_days_ago=opened,
                    closed_days_ago=closed,
                    won=won,
                    offering=offering,
                )
            )
        return deals

    def opportunities(self) -> Iterator[OpportunityRecord]:
        """Yield every account's open and closed opportunities."""
        for index in range(self.accounts):
            plan = self.plan(index)
            for deal in self.deals(plan):
                yield OpportunityRecord(
                    external_id=deal.external_id,
                    account_external_id=plan.external_id,
                    name=deal.name,
                    owner_external_id=self.rep_id(plan.rep),
                    stage=deal.stage,
                    amount=Decimal(deal.amount),
                    close_date=deal.close_date,
                    is_closed=deal.closed_days_ago is not None,
                    is_won=deal.won,
                    url=f"{CRM_URL}/opportunities/{deal.external_id}",
                )

    # Activities ----------------------------------------------------------------------------------

    def activities(self) -> Iterator[ActivityRecord]:
        """Yield six months of activity, account by account, oldest first within an account."""
        for index in range(self.accounts):
            yield from self.account_activities(self.plan(index))[0]

    def account_activities(self, plan: _Plan) -> tuple[list[ActivityRecord], list[str]]:
        """Return the account's activities and the ids of those its strategy links."""
        rng = random.Random(f"{self.seed}/{plan.index}/activities")
        shape = ARCHETYPES[plan.archetype]
        deals = self.deals(plan)
        calls = self._volume(rng, rng.randint(*shape.calls))
        counts = {
            "call": calls,
            "email": _round(rng, calls * rng.uniform(0.5, 0.75)),
            "meeting": _round(rng, calls * rng.uniform(0.08, 0.16)),
            "task": _round(rng, calls * rng.uniform(0.15, 0.25)),
            "note": _round(rng, calls * rng.uniform(0.05, 0.1)),
        }
        span = WINDOW_DAYS - shape.quiet_days
        drafts = [
            self._draft(rng, plan, deals, kind, shape.quiet_days + int(span * rng.random() ** shape.skew))
            for kind, count in counts.items()
            for _ in range(count)
        ]
        for _ in range(rng.randint(*shape.recent)):
            kind = rng.choice(("call", "call", "email", "email", "meeting"))
            drafts.append(self._draft(rng, plan, deals, kind, rng.randint(0, REVIEW_WINDOW - 6)))
        if shape.contract:
            drafts.extend(self._contract(rng, plan, deal) for deal in deals if deal.won)
        drafts.sort(key=lambda draft: (-draft.days_ago, draft.minute))
        records = [self._activity(plan, number, draft) for number, draft in enumerate(drafts, start=1)]
        linked = self._links(rng, plan, drafts)
        return records, [records[position].external_id for position in linked]

    def _volume(self, rng: random.Random, standard: int) -> int:
        return standard if self.rich else _round(rng, standard * SCALED_VOLUME)

    def _draft(self, rng: random.Random, plan: _Plan, deals: list[_Deal], kind: str, days_ago: int) -> _Draft:
        inbound = self._inbound_share(plan.rep)
        if kind == "call":
            direction = "inbound" if rng.random() < inbound else "outbound"
        elif kind == "email":
            direction = "inbound" if rng.random() < min(0.85, inbound + 0.1) else "outbound"
        elif kind == "meeting":
            direction = "inbound" if rng.random() < inbound / 2 else "outbound"
        else:
            direction = "unknown"
        owner = self.rep_id(plan.rep)
        if kind == "meeting" and rng.random() < 0.1:
            owner = self.manager_of(plan.rep)  # managers join the executive meetings
        contact, title = rng.choice(plan.contacts)
        deal = next(
            (deal for deal in deals if deal.opened_days_ago >= days_ago >= (deal.closed_days_ago or 0)),
            None,
        )
        offering = deal.offering if deal is not None else rng.choice(INDUSTRIES[plan.industry].offerings)
        subject = rng.choice(_SUBJECTS[kind, direction]).format(
            c=contact, t=title, o=offering, i=plan.industry.lower()
        )
        opportunity = deal.external_id if deal is not None and rng.random() < 0.6 else None
        minute = rng.randrange(13 * 60, 23 * 60, 5)  # 13:00-22:55 UTC: office hours in the Americas
        return _Draft(days_ago, minute, kind, direction, subject, owner, opportunity)

    def _contract(self, rng: random.Random, plan: _Plan, deal: _Deal) -> _Draft:
        assert deal.closed_days_ago is not None
        subject = rng.choice(_SUBJECTS["contract", "outbound"]).format(o=deal.offering)
        minute = rng.randrange(13 * 60, 23 * 60, 5)
        owner = self.rep_id(plan.rep)
        return _Draft(deal.closed_days_ago, minute, "contract", "outbound", subject, owner, deal.external_id)

    def _activity(self, plan: _Plan, number: int, draft: _Draft) -> ActivityRecord:
        external_id = f"DT{plan.index + 1:06d}-{number:04d}"
        occurred_at = self._midnights[draft.days_ago] + timedelta(minutes=draft.minute)
        return ActivityRecord(
            external_id=external_id,
            account_external_id=plan.external_id,
            kind=draft.kind,
            occurred_at=occurred_at,
            owner_external_id=draft.owner,
            direction=draft.direction,
            subject=draft.subject,
            opportunity_external_id=draft.opportunity,
            url=f"{CRM_URL}/activities/{external_id}",
            modified_at=occurred_at,
        )

    def _links(self, rng: random.Random, plan: _Plan, drafts: list[_Draft]) -> list[int]:
        """Return the positions of the activities the account's strategy links, by how it is kept."""
        kind = ARCHETYPES[plan.archetype].strategy
        start = plan.strategy_start
        if kind is None or plan.strategy_status == "draft":
            return []
        if kind == "covered":
            linked = [
                draft.days_ago <= start and (draft.kind == "contract" or rng.random() < 0.88)
                for draft in drafts
            ]
            # A well-kept strategy leaves at most two of the review window's activities unlinked.
            unlinked_recent = 0
            for position, draft in enumerate(drafts):
                if draft.days_ago < REVIEW_WINDOW and not linked[position]:
                    unlinked_recent += 1
                    linked[position] = unlinked_recent > 2
        elif kind == "unlinked":
            linked = [REVIEW_WINDOW <= draft.days_ago <= start and rng.random() < 0.7 for draft in drafts]
        elif kind == "stale":
            linked = [draft.days_ago <= start and rng.random() < 0.8 for draft in drafts]
        elif plan.strategy_status == "achieved":
            linked = [45 <= draft.days_ago <= start and rng.random() < 0.8 for draft in drafts]
        else:  # abandoned: a little early work, then nothing
            linked = [90 <= draft.days_ago <= start and rng.random() < 0.4 for draft in drafts]
        return [position for position, chosen in enumerate(linked) if chosen]

    # Strategies ----------------------------------------------------------------------------------

    def strategies(self) -> Iterator[StrategyRecord]:
        """Yield the strategies of about a third of the accounts, with the activities they link."""
        for index in range(self.accounts):
            plan = self.plan(index)
            if plan.strategy_status is not None:
                yield self.strategy(plan, self.account_activities(plan)[1])

    def strategy(self, plan: _Plan, linked: list[str]) -> StrategyRecord:
        """Write the account's strategy from its industry's theme, dated by how well it is kept."""
        rng = random.Random(f"{self.seed}/{plan.index}/strategy")
        today = self.today
        status = plan.strategy_status or "active"
        if status == "achieved":
            target = today - timedelta(days=rng.randint(5, 60))
            review = target + timedelta(days=rng.randint(0, 4))
        elif status == "abandoned":
            target = today + timedelta(days=rng.randint(30, 120))
            review = today - timedelta(days=rng.randint(20, 80))
        else:
            target = today + timedelta(days=rng.randint(60, 300))
            if plan.archetype == "overdue":
                review = today - timedelta(days=rng.randint(3, 40))
            else:
                review = today + timedelta(days=rng.randint(7, 50))
        theme = THEMES[INDUSTRIES[plan.industry].theme]
        contact, title = plan.contacts[0]
        values = {
            "a": plan.name,
            "c": contact,
            "t": title,
            "p": rng.choice((10, 15, 20, 25, 30)),
            "target": target.strftime("%B %Y"),
        }
        return StrategyRecord(
            external_id=f"DS{plan.index + 1:06d}",
            account_external_id=plan.external_id,
            author_external_id=self.rep_id(plan.rep),
            objective=theme.objective.format(**values),
            customer_view=theme.customer_view.format(**values),
            approach=theme.approach.format(**values),
            success_measure=theme.success_measure.format(**values),
            target_date=target,
            review_date=review,
            status=status,
            activity_external_ids=tuple(linked),
        )


def _user_id(number: int) -> str:
    return f"DU{number:03d}"


def _two_digits(value: int) -> int:
    """Keep two significant digits, as people quote revenue and deal sizes."""
    unit = 10 ** max(0, len(str(value)) - 2)
    return value // unit * unit


def _round(rng: random.Random, value: float) -> int:
    """Round at random so that small scaled volumes keep their mean."""
    return int(value + rng.random())
