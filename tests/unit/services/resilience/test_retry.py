"""Jittered backoff and the retry budget."""

from __future__ import annotations

import random

from services.resilience import RetryBudget, RetryConfig, backoff_delay


def test_backoff_is_jittered_within_half_to_full_step() -> None:
    config = RetryConfig(backoff_base_s=0.1, backoff_max_s=0.3)
    rng = random.Random(7)
    for retry, step in ((1, 0.1), (2, 0.2), (3, 0.3), (6, 0.3)):
        delays = {backoff_delay(retry, config, rng) for _ in range(50)}
        assert all(step / 2 <= d <= step for d in delays)
        assert len(delays) > 40, "jitter: retries of many clients do not line up"


def test_budget_starts_with_the_initial_tokens_then_denies() -> None:
    budget = RetryBudget(RetryConfig(budget_initial=2, budget_ratio=0.2, budget_max=10))
    assert budget.try_spend()
    assert budget.try_spend()
    assert not budget.try_spend()


def test_budget_caps_retries_at_the_ratio_of_requests() -> None:
    budget = RetryBudget(RetryConfig(budget_initial=3, budget_ratio=0.2, budget_max=10))
    retries = 0
    for _ in range(1000):
        budget.deposit()  # every request fails and wants a retry
        retries += budget.try_spend()
    assert retries <= 3 + 0.2 * 1000
    assert retries >= 0.2 * 1000 - 1


def test_budget_balance_is_capped() -> None:
    budget = RetryBudget(RetryConfig(budget_initial=0, budget_ratio=0.5, budget_max=4))
    for _ in range(100):
        budget.deposit()
    assert budget.balance == 4, "a quiet period cannot bank a burst of retries"
