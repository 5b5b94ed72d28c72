"""`taller compress --cm`: the CM with a network inside it, rows read side by side: exact both ways; refusals."""

import random

import pytest
from conftest import one_line_error, run_cli

from taller.apps import compress_cm
from taller.apps.compress import CM_VERSION, CRC, HEADER, compress_text, decompress_bytes
from taller.errors import TallerError
from taller.models.cm.predictor import Settings

TRAIN = "En un lugar de la Mancha, de cuyo nombre no quiero acordarme, vivía un hidalgo.\n" * 4
SMALL = Settings(warm=40)


@pytest.mark.parametrize(
    "text",
    [
        "No hay mal que por bien no venga. " * 12,  # repeats: the match runs (6 rows of 68 characters here)
        "\ufeffEn un lugar\r\nde la Mancha\r\n",  # a BOM and CRLF: the network never saw them
        "Zoé: ¡ñandú! 北京 €",  # characters neither the counts nor the network had
        "",
        "a",
    ],
)
def test_the_cm_with_a_network_gives_back_the_text(trained_run, text, monkeypatch):
    monkeypatch.setattr(compress_cm, "ROW_MIN", 64)  # several rows read side by side, on a short text
    data, rows, ideal, crcs = compress_cm.encode(TRAIN, text, trained_run, SMALL)
    assert rows == compress_cm.layout(len(text), True)[0] and len(crcs) == compress_cm.blocks(len(text))
    assert compress_cm.decode(TRAIN, data, len(text), trained_run, crcs, settings=SMALL) == text
    assert ideal >= 0 and (len(data) <= 2 or 8 * len(data) <= ideal + 64)


def test_the_network_helps_the_counts(trained_run):
    text = "No hay mal que por bien no venga.\nMás vale tarde que nunca.\n"
    alone = compress_cm.encode(TRAIN, text, None, SMALL)[2]
    assert compress_cm.encode(TRAIN, text, trained_run, SMALL)[2] < alone  # the proverbs it was trained on
    assert compress_cm.layout(5000, True) == (4, 1250) and compress_cm.layout(5000, False) == (1, 5000)
    assert compress_cm.layout(408, True) == (1, 408)


def test_the_command_line_round_trips_with_cm_and_refuses_a_damaged_file(trained_run, tmp_path, capsys):
    original = tmp_path / "texto.txt"
    original.write_bytes("\ufeffMás vale tarde que nunca.\r\nNo hay €uros sin espinas.\r\n".encode())
    code, out, _ = run_cli(["compress", str(trained_run.dir), str(original), "--cm"], capsys)
    assert code == 0 and "bits/carácter" in out
    packed = tmp_path / "texto.txt.tllr"
    assert packed.read_bytes()[4] == CM_VERSION
    code, _, _ = run_cli(["decompress", str(trained_run.dir), str(packed), "-o", str(tmp_path / "vuelta.txt")], capsys)
    assert code == 0 and (tmp_path / "vuelta.txt").read_bytes() == original.read_bytes()

    data = bytearray(packed.read_bytes())
    data[-3] ^= 0x10  # a bit flipped in the coder's bits
    (tmp_path / "malo.tllr").write_bytes(bytes(data))
    code, _, err = run_cli(["decompress", str(trained_run.dir), str(tmp_path / "malo.tllr"), "-o", "x.txt"], capsys)
    assert "dañado" in one_line_error(code, err) and not (tmp_path / "x.txt").exists()


def test_a_cm_file_of_another_run_or_with_an_impossible_header_is_refused(trained_run, mix_run):
    text = "".join(random.Random(2).choice("abcdefg ") for _ in range(300))
    data = compress_text(trained_run, text, cm=True).data
    assert decompress_bytes(trained_run, data) == text
    with pytest.raises(TallerError, match="otra ejecución"):
        decompress_bytes(mix_run, data)
    _, version, identity, n, rows, crc = HEADER.unpack_from(data)
    forged = HEADER.pack(b"TLLR", version, identity, 16_000_000, 64, crc) + bytes(CRC.size * 10)
    with pytest.raises(TallerError, match="no pueden contener tantos"):
        decompress_bytes(trained_run, forged)
