import dataclasses
import hashlib
import io
import tarfile

import pytest

from taller.data import corpora
from taller.data.batches import eval_windows
from taller.data.corpora import extract_from_deb, load_corpus, looks_like_lines, parse_fortunes, strip_gutenberg
from taller.data.split import split_text
from taller.errors import TallerError

FORTUNES = """A año tuerto, el huerto.
%
De quince a veinte, que venga, tenga y convenga; de veinte a veinticinco, que
venga y tenga, aunque no convenga.
%
El amor y los celos  son compañeros.\x20\x20
%
%
Último refrán sin separador final
"""


def test_fortune_parser_joins_entries_and_trims_spaces():
    assert parse_fortunes(FORTUNES) == [
        "A año tuerto, el huerto.",
        "De quince a veinte, que venga, tenga y convenga; de veinte a veinticinco, que venga y tenga, aunque no "
        "convenga.",
        "El amor y los celos son compañeros.",
        "Último refrán sin separador final",
    ]


def test_gutenberg_header_and_footer_are_removed():
    raw = (
        "\ufeffThe Project Gutenberg eBook\r\n*** START OF THE PROJECT GUTENBERG EBOOK 2000 ***\r\nEn un lugar\r\n"
        "de la Mancha\r\n*** END OF THE PROJECT GUTENBERG EBOOK 2000 ***\r\nlicense"
    )
    assert strip_gutenberg(raw) == "En un lugar\nde la Mancha\n"


def fake_deb(fortunes: str) -> bytes:
    """A .deb as Debian builds it: an ar archive whose data.tar.xz holds refranes.fortunes."""
    data = io.BytesIO()
    with tarfile.open(fileobj=data, mode="w:xz") as tar:
        body = fortunes.encode()
        info = tarfile.TarInfo("./usr/share/games/fortunes/es/refranes.fortunes")
        info.size = len(body)
        tar.addfile(info, io.BytesIO(body))

    def member(name: bytes, body: bytes) -> bytes:
        header = (
            name.ljust(16)
            + b"0".ljust(12)
            + b"0".ljust(6)
            + b"0".ljust(6)
            + b"100644".ljust(8)
            + str(len(body)).encode().ljust(10)
            + b"`\n"
        )
        return header + body + (b"\n" if len(body) % 2 else b"")

    return (
        b"!<arch>\n"
        + member(b"debian-binary", b"2.0\n")
        + member(b"control.tar.xz", b"x")
        + member(b"data.tar.xz", data.getvalue())
    )


def test_a_deb_package_is_read_without_dpkg():
    assert extract_from_deb(fake_deb(FORTUNES), "refranes.fortunes").decode() == FORTUNES


@pytest.fixture
def no_refranes_here(tmp_path, monkeypatch):
    """A machine without the refranes: no TALLER_DATA, no system file, no apt-get, an empty cache."""
    monkeypatch.delenv("TALLER_DATA", raising=False)
    monkeypatch.delenv("TALLER_OFFLINE", raising=False)
    monkeypatch.setenv("TALLER_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(corpora.shutil, "which", lambda name: None)
    info = dataclasses.replace(corpora.CORPORA["refranes"], system_paths=(str(tmp_path / "no-such-file"),))
    monkeypatch.setitem(corpora.CORPORA, "refranes", info)
    return tmp_path


def serve_package(tmp_path, monkeypatch, deb: bytes, sha256: str) -> None:
    """Debian's archive, played by a local file (tests never reach the network)."""
    (tmp_path / "fortunes-es.deb").write_bytes(deb)
    monkeypatch.setattr(corpora, "DEBIAN_PACKAGE", (tmp_path / "fortunes-es.deb").as_uri())
    monkeypatch.setattr(corpora, "DEBIAN_PACKAGE_SHA256", sha256)


def test_the_refranes_come_from_debians_archive_where_apt_is_missing(no_refranes_here, monkeypatch):
    deb = fake_deb(FORTUNES)
    serve_package(no_refranes_here, monkeypatch, deb, hashlib.sha256(deb).hexdigest())
    text = "\n".join(parse_fortunes(FORTUNES)) + "\n"
    info = dataclasses.replace(corpora.CORPORA["refranes"], sha256=hashlib.sha256(text.encode()).hexdigest())
    monkeypatch.setitem(corpora.CORPORA, "refranes", info)
    corpus = load_corpus("refranes")
    assert corpus.text == text and corpus.text.startswith("A año tuerto, el huerto.\n")
    assert (no_refranes_here / "cache" / "refranes.txt").read_text(encoding="utf-8") == text  # cached for next time


def test_a_package_with_another_checksum_is_refused_in_one_line(no_refranes_here, monkeypatch):
    serve_package(no_refranes_here, monkeypatch, fake_deb(FORTUNES), "0" * 64)
    with pytest.raises(TallerError) as e:
        load_corpus("refranes")
    message = str(e.value)
    assert "no es el esperado" in message and "\n" not in message
    assert not (no_refranes_here / "cache" / "refranes.txt").exists()


def test_offline_says_every_way_to_provide_the_refranes(no_refranes_here, monkeypatch):
    monkeypatch.setenv("TALLER_OFFLINE", "1")
    with pytest.raises(TallerError) as e:
        load_corpus("refranes")
    message = str(e.value)
    for way in ("TALLER_OFFLINE", "TALLER_DATA", "ruta del fichero", "fortunes-es", "refranes.txt"):
        assert way in message


def test_explicit_path_and_taller_data(tmp_path, monkeypatch, corpus_file):
    corpus = load_corpus(str(corpus_file))
    assert corpus.lines and corpus.text.startswith("No hay mal")
    (tmp_path / "refranes.txt").write_text("Uno.\nDos.\n", encoding="utf-8")
    monkeypatch.setenv("TALLER_DATA", str(tmp_path))
    assert load_corpus("refranes").text == "Uno.\nDos.\n"


def test_no_way_to_find_a_corpus_names_every_way(tmp_path, monkeypatch):
    monkeypatch.setenv("TALLER_DATA", str(tmp_path))
    with pytest.raises(TallerError) as e:
        load_corpus("quijote", download=False)
    msg = str(e.value)
    assert "TALLER_DATA" in msg and "quijote.txt" in msg and "ruta" in msg and "internet" in msg


@pytest.mark.parametrize(
    "content, fragment",
    [
        (None, "no existe"),
        (b"", "vacío"),
        (b"  \n\n", "vacío"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00", "binario"),
        (b"caf\xe9 con leche", "UTF-8"),
    ],
)
def test_bad_files_are_explained(tmp_path, content, fragment):
    path = tmp_path / "texto.txt"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(TallerError, match=fragment):
        load_corpus(str(path))


def test_line_split_holds_out_whole_lines_chosen_by_a_fixed_rule():
    lines = [f"Refrán número {i} con su final." for i in range(200)]
    text = "\n".join(lines) + "\n"
    a = split_text(text, lines=True, val_fraction=0.1, seed=1)
    b = split_text(text, lines=True, val_fraction=0.1, seed=1)
    assert a == b and a.kind == "lines"
    train, val = a.train.strip().split("\n"), a.val.strip().split("\n")
    assert len(val) == 20 and len(train) == 180 and not set(train) & set(val)
    assert a.val.endswith("\n") and a.train.endswith("\n")
    numbers = sorted(int(v.split()[2]) for v in val)
    assert numbers[0] < 100 < numbers[-1]  # spread over the file, not its end


def test_tail_split_and_detection():
    text = "Érase una vez un texto largo.\n\nCon párrafos.\n" * 10
    assert not looks_like_lines(text)
    s = split_text(text, lines=False, val_fraction=0.1)
    assert s.train + s.val == text and len(s.val) == len(text) - int(len(text) * 0.9)


def test_eval_windows_score_every_character_once_with_at_least_half_a_context():
    import numpy as np

    ids = np.arange(103)  # each id is its own position, so the scored targets tell which characters were scored
    windows, mask = eval_windows(ids, 16)
    targets = windows[:, 1:][mask]
    assert sorted(targets.tolist()) == list(range(1, 103))
    assert windows.shape[1] == 17 and mask.shape[1] == 16
    assert mask[1:, :7].sum() == 0  # after the first window, the first half of each is context only


def test_the_shared_refranes_are_the_cleaned_debian_file(corpora, monkeypatch):
    """The real file (4,995 proverbs, CI); in a clone without it, the tests' own 123 lines under its name."""
    monkeypatch.setenv("TALLER_DATA", str(corpora.folder))
    corpus = load_corpus("refranes")
    lines = corpus.text.rstrip("\n").split("\n")
    assert corpus.source == str(corpora.folder / "refranes.txt")
    assert len(lines) == (4995 if corpora.real else 123) and corpus.lines
    s = split_text(corpus.text, lines=True)
    assert len(s.val.strip().split("\n")) == (500 if corpora.real else 12)  # a tenth of the lines
    assert not s.val.startswith("Z")
