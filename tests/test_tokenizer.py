import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from taller.data.tokenizers import CharTokenizer
from taller.errors import TallerError


def test_round_trip_and_vocabulary():
    tok = CharTokenizer.from_text("año nuevo, vida nueva\n")
    assert tok.vocab_size == len(set("año nuevo, vida nueva\n"))
    assert tok.decode(tok.encode("nuevo año")) == "nuevo año"
    arr = tok.encode_array("vida nueva")
    assert arr.dtype.name == "uint8" and tok.decode(arr) == "vida nueva"


def test_unknown_characters_get_a_clear_error_listing_them():
    tok = CharTokenizer.from_text("hola mundo")
    with pytest.raises(TallerError) as e:
        tok.encode("hola ¿qué tal?")
    msg = str(e.value)
    assert "'¿'" in msg and "'q'" in msg and "'é'" in msg and "--reemplazar-desconocidos" in msg
    with pytest.raises(TallerError):
        tok.encode_array("hola ñu")


def test_replacement_of_unknown_characters_is_documented_and_predictable():
    tok = CharTokenizer.from_text("mas vale tarde")
    # á -> a (the same letter without its accent), M -> m (case), ¿ and ? -> space (nothing closer)
    assert tok.decode(tok.encode("¿Más?", unknown="replace")) == " mas "


def test_save_and_load(tmp_path):
    tok = CharTokenizer.from_text("abc\n ñ")
    tok.save(tmp_path / "tokenizer.json")
    assert CharTokenizer.load(tmp_path / "tokenizer.json").chars == tok.chars


@pytest.mark.parametrize(
    "content",
    [
        "not json",
        '{"type": "bpe", "chars": ["a"]}',
        '{"type": "char", "chars": ["ab"]}',
        '{"type": "char", "chars": 5}',
        "[1, 2]",
        '{"type": "char", "chars": ["a", "a"]}',
    ],
)
def test_damaged_tokenizer_json_is_refused(tmp_path, content):
    (tmp_path / "tokenizer.json").write_text(content)
    with pytest.raises(TallerError):
        CharTokenizer.load(tmp_path / "tokenizer.json")


@settings(max_examples=150, deadline=None)
@given(st.text(min_size=1, max_size=200))
def test_round_trip_on_arbitrary_unicode(text):
    tok = CharTokenizer.from_text(text)
    assert tok.decode(tok.encode(text)) == text
    assert tok.decode(tok.encode_array(text)) == text
