"""Formatting for people: Spanish thousands separators and visible names for invisible characters."""


def thousands(x: float) -> str:
    """12345.6 -> '12.346'."""
    return f"{x:,.0f}".replace(",", ".")


def show_char(ch: str) -> str:
    """Space, newline and tab print as nothing; show them as ␣, ⏎ and ⇥."""
    return {" ": "␣", "\n": "⏎", "\t": "⇥"}.get(ch, ch)


def show_token(piece: str) -> str:
    """A token's text with its spaces, newlines and tabs visible: " de" -> "␣de"."""
    return "".join(show_char(c) for c in piece)


def side_by_side(titles: list[str], texts: list[str], width: int = 110) -> str:
    """Texts in columns under their titles, each wrapped to its share of `width`."""
    import textwrap

    col = max(12, (width - 3 * (len(texts) - 1)) // len(texts))
    columns = [[title.ljust(col), "-" * col] + [line.ljust(col) for line in textwrap.wrap(" ".join(text.split()), col)]
               for title, text in zip(titles, texts)]
    rows = max(map(len, columns))
    return "\n".join(" | ".join(c[i] if i < len(c) else " " * col for c in columns).rstrip() for i in range(rows))
