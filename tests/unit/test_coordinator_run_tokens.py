"""The coordinator's run tokens (coordinator/run_tokens.py): a token it minted is checked
against the claims it remembers, any other is verified in full, and both refuse alike."""

from __future__ import annotations

import pytest

from fulmen import keys as keyring
from fulmen.coordinator.run_tokens import RunTokens
from fulmen.errors import TokenError
from fulmen.tokens import mint_run_token, verify_run_token

NOW = 1_800_000_000.0
KEYS = keyring.generate()
PRIVATE = keyring.load_private_key(KEYS.private_key)


def tokens(remembered: int = 8) -> RunTokens:
    return RunTokens(PRIVATE, remembered=remembered)


def test_a_minted_token_is_a_lightning_run_token() -> None:
    token = tokens().mint("r1", now=NOW, run_timeout=60, grace=10)
    claims = verify_run_token(token, PRIVATE.public_key(), run_id="r1", now=NOW, require_sub=True)
    assert (claims.id, claims.sub, claims.nbf, claims.exp) == ("r1", "run:r1", NOW, NOW + 70)


@pytest.mark.parametrize("remembered", [8, 0])  # remembered, or verified by its signature
def test_the_same_refusals_whether_remembered_or_not(remembered: int) -> None:
    runs = tokens(remembered)
    token = runs.mint("r1", now=NOW, run_timeout=60, grace=10)
    assert runs.verify(token, run_id="r1", now=NOW + 5).id == "r1"
    for run_id, now, code in [
        ("r2", NOW, "wrong_run"),
        ("r1", NOW + 70, "expired"),
        ("r1", NOW - 1, "not_yet_valid"),
    ]:
        with pytest.raises(TokenError) as refused:
            runs.verify(token, run_id=run_id, now=now)
        assert refused.value.code == code


def test_a_token_it_did_not_mint_is_verified_in_full() -> None:
    runs = tokens()
    runs.mint("r1", now=NOW, run_timeout=60, grace=10)
    stranger = keyring.load_private_key(keyring.generate().private_key)
    forged = mint_run_token(stranger, "r1", now=NOW, run_timeout=60, grace=10)
    with pytest.raises(TokenError) as refused:
        runs.verify(forged, run_id="r1", now=NOW)
    assert refused.value.code == "bad_signature"
    other_coordinator = mint_run_token(PRIVATE, "r3", now=NOW, run_timeout=60)
    assert runs.verify(other_coordinator, run_id="r3", now=NOW).id == "r3"
    with pytest.raises(TokenError) as refused:
        runs.verify(7, run_id="r1", now=NOW)
    assert refused.value.code == "malformed"


def test_only_the_latest_tokens_are_remembered_and_older_ones_still_verify() -> None:
    runs = tokens(remembered=2)
    first = runs.mint("r0", now=NOW, run_timeout=60, grace=10)
    for i in range(1, 4):
        runs.mint(f"r{i}", now=NOW, run_timeout=60, grace=10)
    assert runs.verify(first, run_id="r0", now=NOW).id == "r0"


@pytest.mark.parametrize("remembered", [8, 0])
def test_any_run_reads_the_run_from_the_token_and_checks_the_rest(remembered: int) -> None:
    """What the collections API asks: which run a token is for, checked as verify checks."""
    runs = tokens(remembered)
    token = runs.mint("r1", now=NOW, run_timeout=60, grace=10)
    assert runs.verify_any(token, now=NOW + 5).id == "r1"
    with pytest.raises(TokenError) as late:
        runs.verify_any(token, now=NOW + 70)
    assert late.value.code == "expired"
    other = keyring.load_private_key(keyring.generate().private_key)
    forged = mint_run_token(other, "r1", now=NOW, run_timeout=60)
    with pytest.raises(TokenError) as refused:
        runs.verify_any(forged, now=NOW)
    assert refused.value.code == "bad_signature"
    for malformed in ("", "abc", "a.b.c", "a.e30.c", "a.eyJpZCI6IDF9.c", 42, None):
        with pytest.raises(TokenError) as bad:
            runs.verify_any(malformed, now=NOW)
        assert bad.value.code == "malformed", malformed
