"""Text deltas never split a UTF-8 character and never leak part of a stop string."""

from __future__ import annotations

from openrft.inference._detokenize import TextStream, Vocab

VOCAB = Vocab(token_bytes=[bytes([b]) for b in range(256)] + [b"<|end|>"], special_ids={256})


def _feed(stream: TextStream, data: bytes) -> list[str]:
    return [stream.push(b) for b in data]


def test_multibyte_characters_wait_for_their_last_byte() -> None:
    stream = TextStream(vocab=VOCAB, stop=())
    deltas = _feed(stream, "é👋".encode())
    assert deltas == ["", "é", "", "", "", "👋"]
    assert stream.push(256) == ""  # specials carry no text
    assert stream.finish() == ""


def test_stop_string_is_cut_and_never_streamed() -> None:
    stream = TextStream(vocab=VOCAB, stop=("END", "\n\n"))
    deltas = _feed(stream, b"ab EN")
    assert "".join(deltas) == "ab "  # "EN" is held back: it may start "END"
    assert stream.push(ord("D")) == ""
    assert stream.stopped and stream.text == "ab "
    assert stream.finish() == ""


def test_held_back_text_is_released_when_it_cannot_stop() -> None:
    stream = TextStream(vocab=VOCAB, stop=("END",))
    out = "".join(_feed(stream, b"xENx")) + stream.finish()
    assert out == "xENx" and not stream.stopped


def test_dangling_partial_character_is_flushed_as_replacement() -> None:
    stream = TextStream(vocab=VOCAB, stop=())
    assert _feed(stream, "é".encode()[:1]) == [""]
    assert stream.finish() == "\ufffd"
