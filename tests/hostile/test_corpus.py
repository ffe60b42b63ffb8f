"""Every attack in the corpus against one real hub: the exact refusal, its audit record, no leak,
and the hub still ready and still filing a normal View Council Tax submission afterwards."""

from __future__ import annotations

from typing import Any

import pytest

from tests.hostile.corpus import CORPUS, SECRETS, Attack, Context, Request
from tests.hostile.harness import Answer


def _param(attack: Attack) -> Any:
    marks = [pytest.mark.xfail(strict=True, reason=attack.bug)] if attack.bug else []
    return pytest.param(attack, id=f"{attack.category}:{attack.name}", marks=marks)


def assert_nothing_leaks(request: Request, answer: Answer) -> None:
    """No file contents, secrets, stack traces or other citizens' data in a refusal, unless the
    request itself carried them (a reply may echo the Keys it refuses)."""
    sent = request.body.decode("utf-8", "replace") + request.path + str(dict(request.headers))
    said = answer.body.decode("utf-8", "replace") + str(answer.headers)
    for secret in SECRETS:
        if secret not in sent:
            assert secret not in said, f"the refusal carries {secret!r}"


@pytest.mark.parametrize("attack", [_param(a) for a in CORPUS])
def test_attack_is_refused_audited_and_the_hub_stays_healthy(ctx: Context, attack: Attack) -> None:
    request = attack.build(ctx)
    answer = ctx.hub.request(request.method, request.path, request.body, request.headers)
    attack.expect.check(answer)
    if attack.extra is not None:
        attack.extra(answer)
    assert_nothing_leaks(request, answer)
    attack.expect.check_audit(ctx.hub.audit_for(answer.request_id))
    ctx.hub.assert_healthy()


def test_the_corpus_covers_every_category_of_the_spec() -> None:
    """The spec's list, by category: a category dropped from the corpus fails here."""
    wanted = {
        "doctype", "entities", "nesting", "encoding", "size", "namespace", "duplicates",
        "signature", "token", "injection", "json", "traversal", "cross-tenant",
    }  # fmt: skip
    assert wanted <= {a.category for a in CORPUS}
    # At least one attack per category is expected to pass today (not only known bugs).
    for category in wanted:
        assert [a for a in CORPUS if a.category == category and a.bug is None], category
