"""Journey drawings for the terminal: the hourglass as narrowing and widening bars, the
flywheel as a ring of stages with arrows between them."""

from __future__ import annotations

import math
from dataclasses import dataclass

from rich.text import Text

from engine.kpis import JourneyKpis, StageKpis

PRE_STYLE = "bold blue"
POST_STYLE = "bold green"
OUTCOME_STYLE = "red"


@dataclass(frozen=True, slots=True)
class Glyphs:
    """The characters drawings use: Unicode where the terminal can, ASCII where it cannot."""

    fill: str
    arrows: tuple[str, ...]  # east, south-east, south, south-west, west, north-west, north, ...
    dot: str

    @classmethod
    def pick(cls, encoding: str) -> Glyphs:
        """Unicode glyphs for a UTF terminal, ASCII ones otherwise."""
        if encoding.lower().replace("-", "").startswith("utf"):
            return cls("█", ("→", "↘", "↓", "↙", "←", "↖", "↑", "↗"), "·")
        return cls("#", (">", "\\", "v", "/", "<", "\\", "^", "/"), "-")


def style_of(stage: StageKpis) -> str:
    """Blue before the purchase, green after it, red for outcomes (the seed's colours)."""
    return {"pre": PRE_STYLE, "post": POST_STYLE}.get(stage.phase, OUTCOME_STYLE)


def outcomes_line(kpis: JourneyKpis, glyphs: Glyphs) -> Text:
    """The journey's terminal outcomes and their counts, on one line."""
    line = Text("outcomes: ", style="dim")
    for i, stage in enumerate(s for s in kpis.stages if s.phase == "outcome"):
        if i:
            line.append(f" {glyphs.dot} ", style="dim")
        line.append(f"{stage.stage} {stage.accounts}", style=OUTCOME_STYLE)
    return line


def hourglass(kpis: JourneyKpis, width: int, glyphs: Glyphs) -> list[Text]:
    """Pre-purchase rows narrowing to the purchase, post-purchase rows widening again."""
    pre = [s for s in kpis.stages if s.phase == "pre"]
    post = [s for s in kpis.stages if s.phase == "post"]
    narrow = max((len(_label(s)) + 4 for s in kpis.stages), default=12)
    wide = max(narrow, width - 2)
    step = (wide - narrow) / max(len(pre) - 1, 1)
    rows: list[Text] = []
    for i, stage in enumerate(pre):
        rows.append(_bar(stage, round(wide - i * step), width, ("\\", "/"), glyphs))
    for i, stage in enumerate(post):
        rows.append(_bar(stage, round(narrow + (i + 1) * step), width, ("/", "\\"), glyphs))
    return rows


def _label(stage: StageKpis) -> str:
    return f" {stage.stage} {stage.accounts} "


def _bar(stage: StageKpis, size: int, width: int, edges: tuple[str, str], glyphs: Glyphs) -> Text:
    """One centred row: an edge, fill, the stage and its count, fill, an edge."""
    label = _label(stage)
    size = max(size, len(label) + 4)
    fill = size - 2 - len(label)
    style = style_of(stage)
    row = Text(" " * max(0, (width - size) // 2))
    row.append(edges[0], style="dim")
    row.append(glyphs.fill * (fill // 2), style=style.replace("bold ", ""))
    row.append(label, style=style)
    row.append(glyphs.fill * (fill - fill // 2), style=style.replace("bold ", ""))
    row.append(edges[1], style="dim")
    return row


class Canvas:
    """A grid of characters, each with an optional style, turned into Rich text lines."""

    def __init__(self, width: int, height: int) -> None:
        self.width = width
        self.chars = [[" "] * width for _ in range(height)]
        self.styles: list[list[str]] = [[""] * width for _ in range(height)]

    def free(self, x: int, y: int) -> bool:
        """Whether the cell is inside the grid and blank."""
        return 0 <= y < len(self.chars) and 0 <= x < self.width and self.chars[y][x] == " "

    def put(self, x: int, y: int, text: str, style: str = "") -> None:
        """Write ``text`` from column ``x`` on row ``y``, clipped to the grid."""
        if not 0 <= y < len(self.chars):
            return
        for i, char in enumerate(text):
            if 0 <= x + i < self.width:
                self.chars[y][x + i] = char
                self.styles[y][x + i] = style

    def centre(self, x: float, y: int, text: str, style: str = "") -> None:
        """Write ``text`` centred on column ``x``."""
        self.put(round(x - len(text) / 2), y, text, style)

    def lines(self) -> list[Text]:
        """The grid as Rich text, one line per row, runs of one style together."""
        out: list[Text] = []
        for chars, styles in zip(self.chars, self.styles, strict=True):
            line = Text()
            end = len("".join(chars).rstrip())
            start = 0
            for i in range(1, end + 1):
                if i == end or styles[i] != styles[start]:
                    line.append("".join(chars[start:i]), style=styles[start] or None)
                    start = i
            out.append(line)
        return out


def wheel(kpis: JourneyKpis, glyphs: Glyphs, width: int = 54, height: int = 15) -> list[Text]:
    """The non-outcome stages placed clockwise around a ring, arrows from each to the next."""
    stages = [s for s in kpis.stages if s.phase != "outcome"]
    canvas = Canvas(width, height)
    cx, cy = (width - 1) / 2, (height - 2) / 2
    rx, ry = cx - 8, cy - 1
    points: list[tuple[float, float]] = []
    for i, stage in enumerate(stages):
        angle = -math.pi / 2 + 2 * math.pi * i / max(len(stages), 1)
        x, y = cx + rx * math.cos(angle), cy + ry * math.sin(angle)
        points.append((x, y))
        canvas.centre(x, round(y), stage.stage, style_of(stage))
        canvas.centre(x, round(y) + 1, str(stage.accounts), "bold")
    for i, (x1, y1) in enumerate(points):
        x2, y2 = points[(i + 1) % len(points)]
        mx, my = round((x1 + x2) / 2), round((y1 + y2) / 2)
        if len(points) > 1 and canvas.free(mx, my):
            canvas.put(mx, my, _arrow(x2 - x1, y2 - y1, glyphs), "dim")
    canvas.centre(cx, round(cy), kpis.name, "bold")
    canvas.centre(cx, round(cy) + 1, f"{kpis.accounts} accounts", "dim")
    return canvas.lines()


def _arrow(dx: float, dy: float, glyphs: Glyphs) -> str:
    """The arrow glyph closest to a direction (character cells are about twice as tall)."""
    angle = math.degrees(math.atan2(2 * dy, dx)) % 360
    return glyphs.arrows[round(angle / 45) % 8]
