"""Formatting for people: numbers the Spanish way, lists in words and visible names for invisible characters."""


def number(x: float, digits: int = 2) -> str:
    """Spanish decimals: a point between thousands, a comma before the decimals. 1234.5 → '1.234,50'."""
    whole, _, frac = f"{x:,.{digits}f}".partition(".")
    return whole.replace(",", ".") + ("," + frac if frac else "")


def short(x: float) -> str:
    """A number as short as it reads (Python's `g`), with the Spanish decimal comma: 0.99 → '0,99', 2.0 → '2'."""
    return f"{x:g}".replace(".", ",")


def thousands(x: float) -> str:
    """A whole number with Spanish thousands separators: 12345.6 → '12.346'."""
    return number(x, 0)


def spanish_list(items: list[str]) -> str:
    """['a', 'b', 'c'] → 'a, b y c'."""
    return ", ".join(items[:-1]) + " y " + items[-1] if len(items) > 1 else "".join(items)


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
    columns = [
        [title.ljust(col), "-" * col] + [line.ljust(col) for line in textwrap.wrap(" ".join(text.split()), col)]
        for title, text in zip(titles, texts)
    ]
    rows = max(map(len, columns))
    return "\n".join(" | ".join(c[i] if i < len(c) else " " * col for c in columns).rstrip() for i in range(rows))


def markdown_table(header: list[str], rows: list[list[str]]) -> list[str]:
    """A Markdown table's lines: the header, its rule, one line per row (a `|` inside a cell is escaped)."""
    line = lambda cells: "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"  # noqa: E731
    return [line(header), "|" + "|".join(["---"] * len(header)) + "|", *map(line, rows)]
