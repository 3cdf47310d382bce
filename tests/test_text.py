import numpy as np
import pytest

from charrnn.data.text import BUILTIN_CORPUS, Vocab, normalize, read_text
from charrnn.errors import CharRNNError


@pytest.mark.parametrize("text", ["hello", "한국어 텍스트", "ภาษาไทย", "def f(x):\n\treturn x\n",
                                  "astral 𝄞😀 and e\u0301", "a"])
def test_encode_decode_round_trip(text):
    v = Vocab.from_text(text)
    ids = v.encode(text)
    assert ids.dtype == np.uint8
    assert v.decode(ids) == text


def test_vocab_is_sorted_distinct_and_dtype_grows():
    v = Vocab.from_text("banana")
    assert v.chars == ("a", "b", "n")
    big = Vocab.from_text("".join(chr(0x4E00 + i) for i in range(300)))
    assert big.dtype == np.uint16


def test_unknown_characters_are_named():
    v = Vocab.from_text("abc")
    with pytest.raises(CharRNNError, match="'xz'"):
        v.encode("axbz")
    ids, unknown = v.encode_known("axbzx")
    assert v.decode(ids) == "ab" and unknown == {"x": 2, "z": 1}


def test_normalize_drops_bom_and_unifies_newlines():
    assert normalize("\ufeffa\r\nb\rc\n") == "a\nb\nc\n"


def test_read_text_normalizes(tmp_path):
    p = tmp_path / "t.txt"
    p.write_bytes(b"\xef\xbb\xbfone\r\ntwo\r")
    assert read_text(p) == "one\ntwo\n"


@pytest.mark.parametrize("content, message", [
    (b"", "is empty"),
    (b"  \n\t\n", "only whitespace"),
    (b"abc\x00def", "binary file (NUL byte at offset 3)"),
    # an ELF header has NULs at both even and odd offsets: binary, not BOM-less UTF-16
    (b"\x7fELF\x02\x01\x01" + bytes(9) + b"\x03\x00>\x00\x01" + bytes(11),
     "binary file (NUL byte at offset 7)"),
    (b"caf\xc3\xa9 \xff ok", "not valid UTF-8 (byte 0xff at offset 6)"),
    ("hello".encode("utf-16"), "UTF-16 LE text; convert it to UTF-8"),
    ("hello world".encode("utf-16-le"), "looks like UTF-16"),
])
def test_read_text_refuses_unusable_files(tmp_path, content, message):
    p = tmp_path / "bad.txt"
    p.write_bytes(content)
    with pytest.raises(CharRNNError, match=message.replace("(", r"\(").replace(")", r"\)")):
        read_text(p)


def test_read_text_names_a_missing_file_and_a_directory(tmp_path):
    with pytest.raises(CharRNNError, match="no such file"):
        read_text(tmp_path / "nope.txt")
    with pytest.raises(CharRNNError, match="is a directory"):
        read_text(tmp_path)


def test_builtin_corpus_needs_no_download():
    text = read_text(BUILTIN_CORPUS)
    assert len(text) > 100_000 and "assert" in text and "\r" not in text
