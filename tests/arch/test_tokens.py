from itas.arch.tokens import TRUNCATION_MARK, approx_tokens, fit_texts, messages_tokens, room_chars


def test_rule():
    assert approx_tokens("") == 0 and approx_tokens("abc") == 1 and approx_tokens("abcd") == 2
    assert messages_tokens([{"role": "user", "content": "x" * 30}]) == 10 + 8
    assert room_chars(2048, 512, 36) == (2048 - 512 - 36) * 3
    assert room_chars(100, 512, 10) == 0


def test_fit_leaves_short_texts_alone_and_shares_the_rest_equally():
    texts = ["a" * 10, "b" * 500, "c" * 1000]
    out, cut = fit_texts(texts, 410)
    assert cut == 2 and out[0] == "a" * 10
    assert len(out[1]) <= 200 and len(out[2]) <= 200 and out[1].endswith(TRUNCATION_MARK)
    assert sum(len(t) for t in out) <= 410
    assert fit_texts(texts, 10_000) == (texts, 0)


def test_fit_with_no_room():
    out, cut = fit_texts(["abc", "defgh"], 0)
    assert cut == 2 and all(t == TRUNCATION_MARK.strip() or t.endswith(TRUNCATION_MARK) for t in out)
