"""The "reads like tactics" check on a table of real-sounding strategies and tactics lists."""

from __future__ import annotations

import pytest

from planning.tactics import check_tactics, split_clauses, starts_with_action

# (objective, approach, reads like tactics?)
TACTICS_LISTS = [
    ("Call the CFO, send the proposal, book a demo", "Follow up every week until they sign."),
    (
        "Get the renewal signed",
        "- Call Jim on Monday\n- Email the revised quote\n- Schedule a demo with IT\n- Follow up Friday",
    ),
    ("Weekly calls with procurement", "Send pricing. Book a site visit. Check in after the board meeting."),
    ("Close the deal by Q4", "Ping Sarah for an intro to the COO, then set up a meeting with her team."),
    ("Keep in touch with the buying committee", "Monthly check-ins and a QBR in March."),
    ("1. Intro call with the new VP of Ops\n2. Demo the analytics module\n3. Send the contract", ""),
    ("Book a meeting with the plant manager", "Take him to lunch and follow up with the case study."),
    ("Touch base with Priya", "Reach out to her boss; chase the PO; remind legal about the MSA redlines."),
    ("Upsell the premium tier", "Pitch it at the QBR, offer a 10% discount, and send the quote."),
    ("We will schedule a demo and email the deck", "Then we'll call them next week to follow up."),
    ("Visit the Rotterdam site", "Present the proposal to the steering group; negotiate the price."),
    ("Send the $120k quote", "Follow-up call Tuesday, then a demo for the finance team."),
]

STRATEGIES = [
    (
        "Help Acme cut unplanned downtime on line 2 by 30% before peak season",
        "Prove it on one line with their maintenance lead, then take the numbers to the COO.",
    ),
    (
        "Their finance team closes the books in 4 days instead of 9",
        "Work with the controller to map the close, so that we fix the two steps that take longest.",
    ),
    (
        "Reduce stock-outs in their 40 stores without adding inventory",
        "Start with the 5 worst stores; the regional managers own the result and we support them.",
    ),
    (
        "Enable the clinic network to see 15% more patients with the same staff",
        "Spend our time with the operations director rather than IT; the scheduling pilot is the proof.",
    ),
    (
        "Make Globex's onboarding of new hires take under 10 days",
        "Earn the HR director's trust by fixing the payroll integration first.",
    ),
    (
        "Grow their e-commerce share from 12% to 20% of revenue",
        "Focus on the marketing team's campaign calendar; our analytics must show the lift each month.",
    ),
    (
        "Initech passes its SOC 2 audit this year",
        "Put our compliance specialist alongside their security lead in order to close the gaps early.",
    ),
    (
        "Free up two planners' time each week for demand forecasting",
        "Automate the weekly report they build by hand, then expand to the other regions.",
    ),
    (
        "The customer's field engineers fix faults on the first visit",
        "Call the service director to agree what first-time fix means, then run a 6-week pilot so that "
        "we can show the change in their repeat-visit rate.",
    ),
    (
        "Lower the cost per claim for Umbrella's insurance arm",
        "Quarterly business reviews with the claims VP, where we report the savings against baseline.",
    ),
    (
        "Become the partner their board trusts for the move to the cloud",
        "Achieve a reference-able migration of the billing system first.",
    ),
]


@pytest.mark.parametrize(("objective", "approach"), TACTICS_LISTS)
def test_a_list_of_actions_reads_like_tactics(objective: str, approach: str) -> None:
    check = check_tactics(objective, approach)
    assert check.reads_like_tactics, check
    assert check.tactic_phrases
    assert not check.outcome_phrases


@pytest.mark.parametrize(("objective", "approach"), STRATEGIES)
def test_a_strategy_with_an_outcome_for_the_customer_does_not(objective: str, approach: str) -> None:
    check = check_tactics(objective, approach)
    assert not check.reads_like_tactics, check


def test_the_table_holds_at_least_twenty_examples() -> None:
    assert len(TACTICS_LISTS) + len(STRATEGIES) >= 20


def test_clauses_split_on_lines_bullets_sentences_and_lists_of_actions() -> None:
    text = "- Call Jim; email the deck\n2. Book a demo. Their costs fall, and margins grow"

    assert split_clauses(text) == [
        "- Call Jim",
        "email the deck",
        "Book a demo",
        "Their costs fall, margins grow",
    ]


def test_fillers_and_labels_come_off_before_the_action_is_read() -> None:
    for clause in (
        "We will call the CFO",
        "Week 1: send the deck",
        "Then we'll follow up",
        "Keep in touch with Ana",
    ):
        assert starts_with_action(clause), clause
    # A gerund after an article is a noun: the scheduling pilot is not an action.
    assert not starts_with_action("The scheduling pilot is the proof")
    assert not starts_with_action("Prove the pilot on line 2")


def test_a_discount_or_a_deal_size_is_not_an_outcome_for_the_customer() -> None:
    assert check_tactics("Offer a 15% discount", "Send the $80k quote").reads_like_tactics
    assert not check_tactics("Cut their freight cost 15%", "Send the $80k quote").reads_like_tactics


def test_a_verdict_quotes_its_phrases_and_says_why() -> None:
    check = check_tactics(
        "Call the CFO about the renewal and the new pricing for next year's contract terms", ""
    )

    assert check.reads_like_tactics
    assert check.quoted() == [
        "“Call the CFO about the renewal, the new pricing for next year's contract terms”"
    ]
    assert any("no outcome" in reason for reason in check.reasons)
    long = check_tactics("Call " + "the buying committee " * 10, "")
    assert long.tactic_phrases[0].endswith("…") and len(long.tactic_phrases[0]) <= 80


def test_quoted_phrases_read_as_written_without_markdown_or_list_markers() -> None:
    check = check_tactics(
        "- **Email** the VP\n- Call `Jim` on Monday\n- Send the [deck](https://example.com)", ""
    )

    assert check.quoted() == ["“Email the VP”", "“Call Jim on Monday”", "“Send the deck”"]


def test_empty_text_is_not_a_list_of_tactics() -> None:
    check = check_tactics("", "")
    assert not check.reads_like_tactics and check.clause_count == 0
