"""Formatting for people: Spanish thousands separators and visible names for invisible characters."""


def thousands(x: float) -> str:
    """12345.6 -> '12.346'."""
    return f"{x:,.0f}".replace(",", ".")


def show_char(ch: str) -> str:
    """Space, newline and tab print as nothing; show them as ␣, ⏎ and ⇥."""
    return {" ": "␣", "\n": "⏎", "\t": "⇥"}.get(ch, ch)
