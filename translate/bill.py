"""The LLM's bill per kept example, from the verify stage's counters (``translate.stage``).

GPU time is the cost of a run at scale: what matters is not the requests sent but the requests
and output tokens each kept example took, how many passed at once and how many a revision saved
(translate/revision.py), and the tokens a streamed answer did not generate because the step
check stopped it at its first wrong step (translate/early_stop.py).
"""

from __future__ import annotations


def _share(part: float, whole: float, digits: int = 4) -> float | None:
    return round(part / whole, digits) if whole else None


def attempts_bill(details: dict, kept: int) -> dict:
    """The bill of the LLM's requests (``details``: the merged counters' details; ``kept``:
    the verify stage's kept items). Empty when no request reached a model."""
    requests = dict(details.get("requests") or {})
    if not requests:
        return {}
    passed = dict(details.get("passed") or {})
    tokens = details.get("tokens") or {}
    first = requests.get("attempt_1", 0)
    sent = sum(requests.values())
    generated = tokens.get("generated", 0)
    stops = sum((details.get("early_stops") or {}).values())
    stopped_tokens = tokens.get("early_stopped", 0)
    # a stopped answer would have run about as long as the answers that finished: an estimate
    finished = sent - stops
    mean_finished = (generated - stopped_tokens) / finished if finished else 0.0
    return {
        "requests": sent,
        "requests_by_attempt": dict(sorted(requests.items())),
        "passed_by_attempt": dict(sorted(passed.items())),
        "revisions_by_reason": dict(details.get("revisions") or {}),
        "first_attempt_pass_rate": _share(passed.get("attempt_1", 0), first),
        "pass_rate_after_revisions": _share(sum(passed.values()), first),
        "requests_per_kept_example": _share(sent, kept, 3),
        "generated_tokens_per_kept_example": _share(generated, kept, 1),
        "early_stops": stops,
        "tokens_before_early_stops": stopped_tokens,
        "tokens_not_generated_estimate": round(max(0.0, stops * mean_finished - stopped_tokens)),
    }


def bill_line(bill: dict) -> str:
    """The bill in one line (the progress line's and the report's words)."""
    if not bill:
        return ""
    text = (f"first attempt passed {_percent(bill['first_attempt_pass_rate'])}, after revisions "
            f"{_percent(bill['pass_rate_after_revisions'])}; {bill['requests']} requests")
    if bill["requests_per_kept_example"] is not None:
        text += (f", {bill['requests_per_kept_example']:g} requests and "
                 f"{bill['generated_tokens_per_kept_example']:g} output tokens per kept example")
    if bill["early_stops"]:
        text += (f"; {bill['early_stops']} answers stopped at a wrong step, about "
                 f"{bill['tokens_not_generated_estimate']} tokens not generated")
    return text


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"
