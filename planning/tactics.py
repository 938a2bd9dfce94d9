"""The "reads like tactics" check: explainable rules over a strategy's objective and approach.

A strategy says what outcome we want for the customer and how we will spend our time to get there;
tactics are the individual actions. The check flags text that is only a list of actions:

1. The text is cut into clauses: lines, bullets, sentences, and items of a list joined by commas,
   "and" or "then" when the item starts with an action.
2. A clause is a tactic when, after bullets and fillers ("we will", "then", "Week 1:"), it starts
   with an action verb (call, email, send, book, schedule, follow up, demo, visit, ping, check in...)
   or with an activity noun (weekly calls, a demo, lunch, QBR...).
3. Outcome evidence is any outcome verb (reduce, increase, grow, cut, save, achieve, enable...),
   a purpose connector (so that, in order to, so they can...), the customer's own measures
   ("their downtime", "the customer's margin") or a measurable figure (20%, $2M, from 9 days to 4).
4. The text reads like tactics when it has at least one tactic clause, at least half its clauses are
   tactics, and there is no outcome evidence anywhere in it.

No network, no model: every verdict quotes the phrases that caused it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from planning.markdown import inline_text

_VERB_STEMS = [
    r"call(?:s|ed|ing)?",
    r"phon(?:e|es|ed|ing)",
    r"ring(?:s|ing)?",
    r"e-?mail(?:s|ed|ing)?",
    r"(?:re-?)?send(?:s|ing)?",
    r"(?:re-?)?sent",
    r"book(?:s|ed|ing)?",
    r"(?:re-?)?schedul(?:e|es|ed|ing)",
    r"follow(?:s|ed|ing)?[- ]?up",
    r"demo(?:s|ed|ing)?",
    r"visit(?:s|ed|ing)?",
    r"ping(?:s|ed|ing)?",
    r"check(?:s|ed|ing)?[- ]in",
    r"touch(?:es|ed|ing)? base",
    r"reach(?:es|ed|ing)? out",
    r"(?:keep|stay)(?:s|ing)? in touch",
    r"chas(?:e|es|ed|ing)",
    r"remind(?:s|ed|ing)?",
    r"nudg(?:e|es|ed|ing)",
    r"meet(?:s|ing)? (?:with|up|them|him|her|the)\b",
    r"met (?:with|up|them|him|her|the)\b",
    r"invit(?:e|es|ed|ing)",
    r"forward(?:s|ed|ing)?",
    r"submit(?:s|ted|ting)?",
    r"text(?:s|ed|ing)?",
    r"messag(?:e|es|ed|ing)",
    r"pitch(?:es|ed|ing)?",
    r"upsell(?:s|ing)?",
    r"present(?:s|ed|ing)? (?:the|our|a|an)\b",
    r"shar(?:e|es|ed|ing) (?:the|our|a|an)\b",
    r"prepar(?:e|es|ed|ing) (?:the|our|a|an)\b",
    r"draft(?:s|ed|ing)? (?:the|our|a|an)\b",
    r"offer(?:s|ed|ing)? (?:a|an|the)\b",
    r"negotiat(?:e|es|ed|ing)",
    r"clos(?:e|es|ed|ing) (?:the|this|a) (?:deal|renewal|opportunity|order|contract)",
    r"sign(?:s|ed|ing)? (?:the|a) (?:contract|order|deal|renewal)",
    r"get(?:s|ting)? (?:a|an|the) (?:meeting|call|demo|po|signature|intro|introduction|contract)\b",
    r"set(?:s|ting)? up (?:a|an|the) (?:call|meeting|demo|lunch|visit|workshop|webinar)",
    r"ask(?:s|ed|ing)? (?:for|about)\b",
    r"tak(?:e|es|ing) \w+(?: \w+)? (?:to|for) (?:lunch|dinner|coffee|drinks)",
    r"introduc(?:e|es|ed|ing)",
    r"log(?:s|ged|ging)? ",
    r"updat(?:e|es|ed|ing) (?:the )?(?:crm|salesforce|hubspot)",
]
_NOUNS = [
    r"(?:phone |intro |discovery |sales |follow-?up |video |zoom |teams )?calls?",
    r"e-?mails?",
    r"meetings?",
    r"demos?",
    r"(?:site )?visits?",
    r"lunch(?:es)?",
    r"dinners?",
    r"coffee",
    r"qbrs?",
    r"(?:quarterly )?business reviews?",
    r"check-?ins?",
    r"touch-?points?",
    r"follow-?ups?",
    r"proposals?",
    r"quotes?",
    r"webinars?",
    r"newsletters?",
    r"cadence",
]
_FILLERS = (
    r"(?:we(?:'ll| will| are going to| need to| should| must| plan to)?|i(?:'ll| will)?|let's|let us|"
    r"to|then|and|also|next|first|firstly|second|secondly|finally|after that|afterwards|keep|continue to|"
    r"try to|need to|must|should|will|please|just|more|another|regular(?:ly)?|weekly|bi-?weekly|monthly|"
    r"daily|quarterly|every \w+|a|an|the|some|frequent|short|quick|initial|final|second|third|"
    r"a few|lots of|many|several)\b[\s,]*"
)
_LEADING_LABEL = re.compile(
    r"^\s*(?:[-*•·+]|\d+[.)]|[a-z][.)]|\[[ x]?\])\s*|^\s*[\w ./-]{1,20}:\s+", re.IGNORECASE
)
_FILLER = re.compile(rf"^(?:{_FILLERS})", re.IGNORECASE)
_ARTICLE = re.compile(r"^(?:a|an|the|some|another)\b", re.IGNORECASE)
_ACTION_START = re.compile(rf"^(?:{'|'.join(_VERB_STEMS)})\b", re.IGNORECASE)
_NOUN_START = re.compile(rf"^(?:{'|'.join(_NOUNS)})\b", re.IGNORECASE)

_OUTCOME_VERBS = [
    r"reduc(?:e|es|ed|ing|tion|tions)",
    r"increas(?:e|es|ed|ing)",
    r"grow(?:s|n|th|ing)?",
    r"cut(?:s|ting)?",
    r"lower(?:s|ed|ing)?",
    r"improv(?:e|es|ed|ing|ement|ements)",
    r"sav(?:e|es|ed|ing|ings)",
    r"achiev(?:e|es|ed|ing)",
    r"enabl(?:e|es|ed|ing)",
    r"expand(?:s|ed|ing)?",
    r"expansion",
    r"doubl(?:e|es|ed|ing)",
    r"tripl(?:e|es|ed|ing)",
    r"halv(?:e|es|ed|ing)",
    r"shorten(?:s|ed|ing)?",
    r"speed(?:s|ing)? up",
    r"accelerat(?:e|es|ed|ing)",
    r"eliminat(?:e|es|ed|ing)",
    r"avoid(?:s|ed|ing)?",
    r"prevent(?:s|ed|ing)?",
    r"retain(?:s|ed|ing)?",
    r"decreas(?:e|es|ed|ing)",
    r"minimi[sz](?:e|es|ed|ing)",
    r"maximi[sz](?:e|es|ed|ing)",
    r"boost(?:s|ed|ing)?",
    r"streamlin(?:e|es|ed|ing)",
    r"automat(?:e|es|ed|ing)",
    r"consolidat(?:e|es|ed|ing)",
    r"moderni[sz](?:e|es|ed|ing)",
    r"free(?:s|d|ing)? up",
    r"unlock(?:s|ed|ing)?",
    r"comply|complies|compliant",
    r"pass(?:es|ed|ing)? (?:the|their|its) audit",
]
_CONNECTORS = [
    r"so that",
    r"in order to",
    r"so (?:they|she|he|it|the customer|the client) can",
    r"so (?:they|she|he|it) (?:stop|start|no longer)",
    r"(?:to help|helping|help) (?:them|the customer|the client)",
    r"allowing (?:them|the customer|the client)",
    r"which (?:will )?(?:lets?|allows?|gives?) (?:them|the customer|the client)",
    r"customer outcomes?",
    r"business outcomes?",
]
_MEASURES = (
    r"costs?|revenue|margins?|churn|downtime|uptime|throughput|output|productivity|efficiency|quality|"
    r"compliance|risk|growth|turnover|retention|satisfaction|savings|waste|errors?|backlog|lead times?|"
    r"cycle times?|capacity|time[- ]to[- ]\w+|patients?|customers?|members?|students?|yield|scrap|"
    r"stock-?outs?|inventory|cash ?flow|working capital|headcount|overtime|emissions|safety|nps|sla"
)
_OWNERS = r"their|its|the customer's|the client's|customer's|client's|[A-Z][\w&-]*'s"
_POSSESSIVE_MEASURE = rf"(?:{_OWNERS}) (?:\w+ ){{0,2}}(?:{_MEASURES})"
_UNITS = (
    r"days?|hours?|weeks?|minutes?|months?|shifts?|points?|fte|ftes|people|staff|"
    r"units?|sites?|plants?|stores?"
)
_FIGURES = [
    # A discount is our lever, not the customer's result; a bare deal size is our number, not theirs.
    r"\d[\d,.]*\s?(?:%|percent|per cent|pct)(?!\s*(?:discount|off\b|uplift on (?:our|the) price))",
    r"\d+(?:\.\d+)?\s?(?:x|fold)\b",
    rf"from \d[\d,.]*\s?(?:{_UNITS})? to \d[\d,.]*",
    rf"(?:under|below|above|fewer than|less than|at least) \d[\d,.]*\s?(?:{_UNITS})\b",
]
_OUTCOME = re.compile(
    rf"\b(?:{'|'.join(_OUTCOME_VERBS + _CONNECTORS)})\b|{_POSSESSIVE_MEASURE}|(?:{'|'.join(_FIGURES)})",
    re.IGNORECASE,
)

# Clauses: lines, then sentences and semicolons, then list items joined by ", " / " and " / " then ".
_LINES = re.compile(r"[\r\n]+")
_SENTENCES = re.compile(r"(?<=[.!?;])\s+|;\s*|\s+-{1,2}\s+|\s+–\s+")
_LIST_ITEMS = re.compile(r",\s*(?:and\s+|then\s+)?|\s+(?:and then|and|then|&|\+)\s+", re.IGNORECASE)
_QUOTE_LENGTH = 80


@dataclass(frozen=True)
class TacticsCheck:
    """The verdict on one text, with the phrases behind it."""

    reads_like_tactics: bool
    tactic_phrases: tuple[str, ...]
    outcome_phrases: tuple[str, ...]
    clause_count: int
    reasons: tuple[str, ...]

    def quoted(self) -> list[str]:
        """Return the tactic phrases quoted for a message."""
        return [f"“{phrase}”" for phrase in self.tactic_phrases]


def _without_fillers(clause: str) -> list[tuple[str, bool]]:
    """Return the clause and each shorter form left as bullets and filler words come off the front.

    Each form says whether it follows an article: "the scheduling pilot" is a noun, not an action.
    """
    forms = [(clause.strip(), False)]
    while True:
        text = _LEADING_LABEL.sub("", forms[-1][0], count=1).strip()
        filler = _FILLER.match(text)
        if filler:
            text = text[filler.end() :].strip()
        if text == forms[-1][0]:
            return forms
        forms.append((text, bool(filler and _ARTICLE.match(filler.group(0)))))


def starts_with_action(clause: str) -> bool:
    """Tell whether a clause, past its bullet and filler words, starts with an action or activity."""
    # Each form is tried, because some fillers begin an action too ("keep in touch").
    return any(
        _NOUN_START.match(form) or (not after_article and _ACTION_START.match(form))
        for form, after_article in _without_fillers(clause)
    )


def split_clauses(text: str) -> list[str]:
    """Cut text into clauses; list items split off only when they start with an action."""
    clauses: list[str] = []
    for line in _LINES.split(text or ""):
        for sentence in _SENTENCES.split(line):
            pieces = [piece for piece in _LIST_ITEMS.split(sentence) if piece and piece.strip()]
            merged: list[str] = []
            for piece in pieces:
                if merged and not starts_with_action(piece):
                    merged[-1] = f"{merged[-1]}, {piece.strip()}"
                else:
                    merged.append(piece.strip())
            clauses.extend(clause.strip(" .,;:!?\t") for clause in merged)
    # A clause needs a letter: "1." left by a numbered list is not one.
    return [clause for clause in clauses if re.search(r"[^\W\d_]", clause)]


def _quote(text: str) -> str:
    """Quote a clause as the person reads it: without its list marker (one followed by a space, so
    "-5% churn" keeps its minus) or Markdown emphasis ("**Call** the CFO" reads "Call the CFO")."""
    text = inline_text(re.sub(r"^\s*(?:[-*•·+]|\d+[.)])\s+", "", text.strip())).strip()
    return text if len(text) <= _QUOTE_LENGTH else text[: _QUOTE_LENGTH - 1].rstrip() + "…"


def check_tactics(*texts: str) -> TacticsCheck:
    """Check whether the given texts (objective, approach) read like a list of tactics."""
    clauses = [clause for text in texts for clause in split_clauses(text)]
    tactics = [clause for clause in clauses if starts_with_action(clause)]
    outcomes = [match.group(0).strip() for text in texts for match in _OUTCOME.finditer(text or "")]
    unique_tactics = tuple(dict.fromkeys(_quote(clause) for clause in tactics))
    unique_outcomes = tuple(dict.fromkeys(outcomes))
    mostly_tactics = bool(tactics) and len(tactics) * 2 >= len(clauses)
    verdict = mostly_tactics and not unique_outcomes

    reasons: list[str] = []
    if tactics:
        reasons.append(f"{len(tactics)} of {len(clauses)} phrases start with an action or an activity.")
    if unique_outcomes:
        reasons.append(
            "It names an outcome: " + ", ".join(f"“{phrase}”" for phrase in unique_outcomes[:5]) + "."
        )
    elif clauses:
        reasons.append(
            "It names no outcome for the customer: nothing they will reduce, grow, save or achieve, "
            "no “so that”, no measurable figure."
        )
    return TacticsCheck(verdict, unique_tactics, unique_outcomes, len(clauses), tuple(reasons))
