"""Real compressed files: the arithmetic coder, `taller compress` / `taller decompress`, and their refusals."""

import hashlib
import math
import random

import numpy as np
import pytest
from conftest import one_line_error, run_cli

from taller.apps.compress import CRC, HEADER, blocks, compress_text, decompress_bytes, layout
from taller.arithmetic import Decoder, Encoder
from taller.errors import TallerError


def test_the_coder_round_trips_and_spends_what_the_probabilities_say():
    rng = np.random.default_rng(0)
    for _ in range(40):
        V, n = int(rng.integers(1, 30)), int(rng.integers(0, 400))
        freqs = [rng.integers(1, 2000, size=V) for _ in range(n)]
        symbols = [int(rng.choice(V, p=f / f.sum())) for f in freqs]
        encoder, ideal = Encoder(), 0.0
        for f, s in zip(freqs, symbols):
            cum = np.concatenate([[0], np.cumsum(f)])
            encoder.encode(int(cum[s]), int(f[s]), int(cum[-1]))
            ideal -= math.log2(f[s] / cum[-1])
        data = encoder.finish()
        decoder, decoded = Decoder(data), []
        for f in freqs:
            cum = np.concatenate([[0], np.cumsum(f)])
            j = int(np.searchsorted(cum, decoder.target(int(cum[-1])), side="right")) - 1
            decoder.consume(int(cum[j]), int(f[j]), int(cum[-1]))
            decoded.append(j)
        assert decoded == symbols
        assert ideal <= 8 * len(data) <= ideal + 10  # within two bits of the ideal, plus the last byte's padding


def texts(run, seed: int = 0) -> list[str]:
    """Random and hostile texts over the run's own characters."""
    rng = random.Random(seed)
    chars = run.tokenizer.pieces
    return [
        "",
        chars[0],
        "\n",
        "No hay mal que por bien no venga.\n" * 3,
        "".join(rng.choice(chars) for _ in range(700)),  # noise: every character, in no order
        chars[-1] * 1500,
    ]  # one character 1,500 times: two rows read side by side


def test_compress_round_trips_random_and_hostile_texts(trained_run):
    for text in texts(trained_run):
        packed = compress_text(trained_run, text)
        assert decompress_bytes(trained_run, packed.data) == text
        assert len(packed.data) >= HEADER.size and packed.chars == len(text)
        # the real size is what the model promised, plus the header and the coder's last bits
        table = CRC.size * blocks(len(text))  # a CRC-32 per block of about 64 Ki tokens
        assert 8 * (len(packed.data) - HEADER.size - table) <= packed.ideal_bits + 8 + 2 * layout(len(text))[0]
    assert layout(1500) == (1, 1500) and layout(5000) == (4, 1250) and layout(0) == (0, 0)


def test_the_command_line_round_trips_a_file_byte_for_byte(trained_run, tmp_path, capsys):
    original = tmp_path / "texto.txt"
    original.write_bytes("Más vale tarde que nunca.\nNo hay rosa sin espinas.\n".encode())
    code, out, _ = run_cli(["compress", str(trained_run.dir), str(original)], capsys)
    assert code == 0 and "bits/carácter" in out
    packed = tmp_path / "texto.txt.tllr"
    assert packed.read_bytes()[:4] == b"TLLR"
    code, _, _ = run_cli(["decompress", str(trained_run.dir), str(packed), "-o", str(tmp_path / "vuelta.txt")], capsys)
    assert code == 0 and (tmp_path / "vuelta.txt").read_bytes() == original.read_bytes()
    code, _, err = run_cli(["decompress", str(trained_run.dir), str(packed), "-o", str(original)], capsys)
    assert "ya existe" in one_line_error(code, err)  # never over an existing file without --force


def test_unseen_characters_and_other_runs_files_are_refused_in_one_line(
    trained_run, trained_lstm_run, tmp_path, capsys
):
    strange = tmp_path / "raro.txt"
    strange.write_text("No hay €uros\n", encoding="utf-8")
    code, _, err = run_cli(["compress", str(trained_run.dir), str(strange)], capsys)
    assert "nunca vio" in one_line_error(code, err) and "'€'" in err and not (tmp_path / "raro.txt.tllr").exists()

    plain = tmp_path / "refran.txt"
    plain.write_text("No hay mal que por bien no venga.\n", encoding="utf-8")
    assert run_cli(["compress", str(trained_lstm_run.dir), str(plain), "-o", str(tmp_path / "r.tllr")], capsys)[0] == 0
    code, _, err = run_cli(
        ["decompress", str(trained_run.dir), str(tmp_path / "r.tllr"), "-o", str(tmp_path / "r.txt")], capsys
    )
    assert "otra ejecución" in one_line_error(code, err) and not (tmp_path / "r.txt").exists()

    code, _, err = run_cli(["decompress", str(trained_run.dir), str(plain), "-o", str(tmp_path / "x.txt")], capsys)
    assert ".tllr" in one_line_error(code, err)  # not a .tllr at all
    data = bytearray((tmp_path / "r.tllr").read_bytes())
    data[HEADER.size + 4 :] = bytes(
        len(data) - HEADER.size - 4
    )  # the coder's bits wiped: caught by a CRC, or cut short
    with pytest.raises(TallerError, match="dañado"):
        decompress_bytes(trained_lstm_run, bytes(data))


def test_a_mix_round_trips_too(mix_run):
    text = "Más vale pájaro en mano que ciento volando.\nNo hay rosa sin espinas.\n"
    assert decompress_bytes(mix_run, compress_text(mix_run, text).data) == text


def test_compression_leaves_the_run_as_it_was(trained_run):
    before = hashlib.sha256((trained_run.dir / "model.safetensors").read_bytes()).hexdigest()
    compress_text(trained_run, "No hay rosa sin espinas.\n")
    assert hashlib.sha256((trained_run.dir / "model.safetensors").read_bytes()).hexdigest() == before


def test_a_bit_flipped_in_the_middle_stops_the_decoder_at_its_block_and_writes_nothing(
    trained_run, tmp_path, capsys, monkeypatch
):
    """Blocks of 256 tokens here (64 Ki in use): 3,000 characters in 2 rows make 12 blocks; a bit flipped in the
    middle of the coder's bits is caught by the CRC of a block before the last, and no output is left."""
    import taller.apps.compress as compress

    monkeypatch.setattr(compress, "BLOCK_TOKENS", 256)
    text = "".join(random.Random(1).choice(trained_run.tokenizer.pieces) for _ in range(3000))
    data = bytearray(compress_text(trained_run, text).data)
    start = HEADER.size + CRC.size * blocks(len(text))
    assert blocks(len(text)) == 12
    data[(start + len(data)) // 2] ^= 0x10
    packed = tmp_path / "t.tllr"
    packed.write_bytes(bytes(data))
    code, _, err = run_cli(["decompress", str(trained_run.dir), str(packed), "-o", str(tmp_path / "t.txt")], capsys)
    line = one_line_error(code, err)
    found = int(line.split("el bloque ")[1].split(" de 12")[0])
    assert 1 <= found < 12 and "no escribo nada" in line, line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.tllr"]  # nor a temporary file


def test_an_impossible_header_is_refused_before_decoding(trained_run):
    """16 million tokens declared with no room for the blocks' CRCs, or for the tokens in the bytes that follow."""
    import taller.apps.compress as compress

    identity = bytes.fromhex(compress.run_identity(trained_run))
    n = 16_000_000
    header = HEADER.pack(b"TLLR", 2, identity, n, layout(n)[0], 0)
    with pytest.raises(TallerError, match="no pueden contener tantos"):
        decompress_bytes(trained_run, header + bytes(10))
    assert compress.most_tokens(1, 2) > 1e6 and compress.most_tokens(0, 1) == math.inf  # one token: no bits at all
    assert compress.most_tokens(100, 60) < compress.most_tokens(200, 60)
