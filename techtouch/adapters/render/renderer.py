"""Message rendering: one strict, sandboxed Jinja2 environment per Renderer over templates/.

Templates are user input (CS ops write them; a repository can take contributions), so they render
in Jinja's immutable sandbox with no globals but `range`: `{{ cycler.__init__.__globals__ }}` and
friends are errors with the template's file and line, never a path to settings or secrets, and
a template cannot change the context it is given.

Every message is a set of files named after the journey's template id, e.g. `renewal/announce`:
`renewal/announce.subject.txt`, `.email.html`, `.email.txt` for an email and `.sms.txt` for an SMS.
HTML is autoescaped, text is not; a missing variable is an error (StrictUndefined), never empty text
in front of a customer. The HTML part is CSS-inlined, because most mail clients drop <style> blocks.

Speed (a daily run renders tens of thousands of messages): templates are compiled once per Renderer
(no reload checks), and the stylesheet is inlined once per template shape rather than once per
message. An HTML part is rendered with every printed value replaced by a numbered slot; the result
(the template's markup for that path through its `if`s and `for`s) is CSS-inlined once and kept,
and each message fills the slots of the inlined markup with its values, escaped as the inliner
would have written them. A shape is checked against the plain path (render, then inline) the first
time it is seen, and a shape whose slots could change what the stylesheet matches (a slot in a
tag name, a class, id or style attribute, a <style> block, an unquoted attribute; attribute or
pseudo-class selectors) always takes the plain path.
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections.abc import Callable, Iterable, Mapping, MutableMapping
from dataclasses import dataclass
from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal
from html.parser import HTMLParser
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

import css_inline
from jinja2 import (
    FileSystemLoader,
    StrictUndefined,
    TemplateNotFound,
    TemplateSyntaxError,
    nodes,
    pass_eval_context,
    select_autoescape,
)
from jinja2.nodes import EvalContext
from jinja2.sandbox import ImmutableSandboxedEnvironment
from markupsafe import escape

Channel = Literal["email", "sms"]

SUBJECT_MAX = 150
SMS_MAX = 160
EMAIL_SUFFIXES = ("subject.txt", "email.html", "email.txt")
SMS_SUFFIXES = ("sms.txt",)
_TEMPLATE_ID = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_-]*(/[A-Za-z0-9_][A-Za-z0-9_-]*)*$")
_MONTHS = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
]
MINUS = "\u2212"

# The GSM 03.38 alphabet: one character outside it and an SMS segment shrinks from 160 to 70.
_GSM7 = set(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
_GSM7_EXTENDED = set("^{}\\[~]|€\f")  # two septets each


@dataclass(frozen=True)
class RenderedEmail:
    subject: str
    html: str
    text: str


class TemplateProblem(Exception):
    """A template that cannot be rendered: `templates/renewal/announce.email.html:12: message`."""

    def __init__(self, template: str, message: str, line: int | None = None):
        self.template = template
        self.message = message
        self.line = line
        super().__init__(str(self))

    def __str__(self) -> str:
        where = f"{self.template}:{self.line}" if self.line else self.template
        return f"{where}: {self.message}"


# --- filters -------------------------------------------------------------------------------------


def _half_up(value: float) -> int:
    return int(Decimal(repr(value)).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def percent(value: float | None, signed: bool = False) -> str:
    """A ratio as a whole percentage: -0.42 -> "\u221242%" (a true minus sign, U+2212).

    0.15 -> "15%", or "+15%" when signed; None -> "n/a".
    """
    if value is None:
        return "n/a"
    whole = _half_up(float(value) * 100)
    if whole < 0:
        return f"{MINUS}{-whole}%"
    return f"+{whole}%" if signed and whole > 0 else f"{whole}%"


def money(value: float | None) -> str:
    """9000.0 -> "$9,000" (whole dollars); None -> "n/a"."""
    if value is None:
        return "n/a"
    whole = _half_up(float(value))
    return f"{MINUS}${-whole:,}" if whole < 0 else f"${whole:,}"


def longdate(value: date | None) -> str:
    """date(2027, 3, 3) -> "March 3, 2027", independent of the machine's locale; None -> "n/a"."""
    if value is None:
        return "n/a"
    if isinstance(value, datetime):
        value = value.date()
    return f"{_MONTHS[value.month - 1]} {value.day}, {value.year}"


def gift_code(touch_key: str) -> str:
    """A stable, unguessable-enough gift code for a touch: the first 10 hex chars of its sha256."""
    return hashlib.sha256(str(touch_key).encode("utf-8")).hexdigest()[:10].upper()


FILTERS: dict[str, Callable[..., str]] = {
    "percent": percent,
    "money": money,
    "longdate": longdate,
    "gift_code": gift_code,
}


# --- the renderer --------------------------------------------------------------------------------


class Renderer:
    """Renders one journey template id to an email (subject, CSS-inlined HTML, text) or an SMS."""

    def __init__(self, templates_dir: Path):
        self.templates_dir = Path(templates_dir)
        self._recording = threading.local()  # the slots of the HTML part being rendered, per thread
        self.environment = _Environment(
            loader=FileSystemLoader(self.templates_dir.resolve()),  # absolute: errors map back to files
            undefined=StrictUndefined,
            autoescape=select_autoescape(["html"]),
            trim_blocks=True,
            lstrip_blocks=True,
            auto_reload=False,  # compiled once: a Renderer lives for one process (one run)
            cache_size=-1,
            finalize=self._finalize(),
        )
        # The smallest set of globals the templates need: the sandbox's bounded `range` only (no
        # cycler, joiner, namespace, lipsum, dict: nothing that leads back to Python objects).
        self.environment.globals = {"range": self.environment.globals["range"]}
        self.environment.filters.update(FILTERS)
        # No <link> stylesheets are fetched: a render never goes to the network.
        self._inliner = css_inline.CSSInliner(load_remote_stylesheets=False)
        self._shapes: dict[str, _Shape | None] = {}  # rendered shape -> its inlined form (None: plain path)
        self._root = str(self.templates_dir.resolve())
        self._shown_root = _shown(self.templates_dir)

    def __reduce__(self) -> tuple[type[Renderer], tuple[Path]]:
        """A renderer travels (to delivery's render workers) as its templates folder: the receiving
        process compiles what it renders, once, and keeps its own shapes (each checked against the
        plain render-then-inline path the first time, so its messages are the same bytes)."""
        return (Renderer, (self.templates_dir,))

    # -- public API

    def email(self, template: str, context: Mapping[str, Any]) -> RenderedEmail:
        ctx = dict(context)
        return RenderedEmail(
            subject=self._subject(template, ctx),
            html=self._html(template, ctx),
            text=self._render(f"{template}.email.txt", ctx).strip() + "\n",
        )

    def sms(self, template: str, context: Mapping[str, Any]) -> str:
        return self._render(f"{template}.sms.txt", dict(context)).strip()

    def files_for(self, template: str, channel: Channel) -> list[Path]:
        """The files that must exist for `template` on `channel`."""
        if not _TEMPLATE_ID.match(template):
            raise ValueError(f"template id {template!r} must look like 'journey/name'")
        suffixes: tuple[str, ...]
        if channel == "email":
            suffixes = EMAIL_SUFFIXES
        elif channel == "sms":
            suffixes = SMS_SUFFIXES
        else:
            raise ValueError(f"templates are for email or sms, not {channel!r}")
        return [self.templates_dir / f"{template}.{suffix}" for suffix in suffixes]

    def check(self, template: str, channel: Channel, context: Mapping[str, Any]) -> list[str]:
        """Every problem as "path:line: message" (missing file, syntax, undefined variable); [] when fine."""
        try:
            files = self.files_for(template, channel)
        except ValueError as exc:
            return [f"{template}: {exc}"]
        problems = [
            f"{self._show(path.relative_to(self.templates_dir).as_posix())}: missing template file"
            for path in files
            if not path.is_file()
        ]
        if problems:
            return problems
        names = [path.relative_to(self.templates_dir).as_posix() for path in files]
        for name in names:
            try:
                self.environment.get_template(name)
            except TemplateSyntaxError as exc:
                problems.append(str(self._syntax_problem(exc, name)))
        if problems:
            return problems

        ctx = dict(context)
        steps: list[Callable[[], object]]
        if channel == "email":
            steps = [
                lambda: self._subject(template, ctx),
                lambda: self._html(template, ctx),
                lambda: self._render(f"{template}.email.txt", ctx),
            ]
        else:
            steps = [lambda: problems.extend(self._sms_problems(template, ctx))]
        for step in steps:
            try:
                step()
            except TemplateProblem as exc:
                problems.append(str(exc))
        return problems

    def unsubscribe_problems(self, template: str, context: Mapping[str, Any]) -> list[str]:
        """An email must let its reader unsubscribe, as an SMS must say STOP: rendered with `context`,
        the HTML part needs a link (`<a href>`) to `links.unsubscribe` and the text part the URL itself.
        The layouts' footers carry both, so a template that extends them passes; one that does not must
        write the link. Problems as "path: message"; [] when fine or when the email does not render at
        all (check() reports that)."""
        url = str(context["links"]["unsubscribe"])
        try:
            email = self.email(template, context)
        except TemplateProblem:
            return []
        problems = []
        if url not in _hrefs(email.html):
            problems.append(
                f"{self._show(f'{template}.email.html')}: an email must carry the unsubscribe link, "
                '<a href="{{ links.unsubscribe }}">: extend _layout.email.html, whose footer has it'
            )
        if url not in email.text:
            problems.append(
                f"{self._show(f'{template}.email.txt')}: an email must carry the unsubscribe link, "
                "{{ links.unsubscribe }}: extend _layout.email.txt, whose footer has it"
            )
        return problems

    def offered_surveys(self, templates: Iterable[str]) -> set[str]:
        """The survey names these template files (and what they extend, include or import) put in
        answer links, read from the source whatever branch they sit in: the literal first argument
        of `survey_url(...)`, or of a macro that hands its own parameter on to `survey_url`
        (`ui.choices("renewal", ...)`, `ui.scale("nps", ...)`). Macros are matched by name."""
        trees = self._trees(templates)
        callers: dict[str, tuple[int, str]] = {"survey_url": (0, "survey")}
        macros = [macro for tree in trees for macro in tree.find_all(nodes.Macro)]
        changed = True
        while changed:
            changed = False
            for macro in macros:
                if macro.name in callers:
                    continue
                params = [arg.name for arg in macro.args]
                for call in macro.find_all(nodes.Call):
                    argument = _survey_argument(call, callers)
                    if isinstance(argument, nodes.Name) and argument.name in params:
                        callers[macro.name] = (params.index(argument.name), argument.name)
                        changed = True
                        break
        found: set[str] = set()
        for tree in trees:
            for call in tree.find_all(nodes.Call):
                argument = _survey_argument(call, callers)
                if isinstance(argument, nodes.Const) and isinstance(argument.value, str):
                    found.add(argument.value)
        return found

    def _trees(self, templates: Iterable[str]) -> list[nodes.Template]:
        """The parsed templates and every template they name in extends/include/import, once each;
        files that are missing or do not parse are left out (check() reports them)."""
        loader = self.environment.loader
        assert loader is not None
        queue, seen, trees = list(templates), set(), []
        while queue:
            name = queue.pop()
            if name in seen:
                continue
            seen.add(name)
            try:
                source = loader.get_source(self.environment, name)[0]
                tree = self.environment.parse(source, name)
            except (TemplateNotFound, TemplateSyntaxError):
                continue
            trees.append(tree)
            for node in tree.find_all((nodes.Extends, nodes.Include, nodes.Import, nodes.FromImport)):
                target: nodes.Expr = node.template  # type: ignore[attr-defined]  # each of the four has it
                for const in (target, *target.find_all(nodes.Const)):
                    if isinstance(const, nodes.Const) and isinstance(const.value, str):
                        queue.append(const.value)
        return trees

    # -- parts

    def _subject(self, template: str, ctx: dict[str, Any]) -> str:
        name = f"{template}.subject.txt"
        subject = self._render(name, ctx).strip()
        if "\n" in subject or "\r" in subject:
            raise TemplateProblem(self._show(name), "the subject must render to one line")
        if not subject:
            raise TemplateProblem(self._show(name), "the subject renders empty")
        if len(subject) > SUBJECT_MAX:
            raise TemplateProblem(
                self._show(name), f"the subject renders to {len(subject)} characters, more than {SUBJECT_MAX}"
            )
        return subject

    def _html(self, template: str, ctx: dict[str, Any]) -> str:
        name = f"{template}.email.html"
        slots: list[str] = []
        self._recording.slots = slots
        try:
            skeleton = self._render(name, ctx)
        finally:
            self._recording.slots = None
        if _ODD_VALUE.search("".join(slots)):  # a value the HTML parser would rewrite: the plain path
            return self._inline(name, _fill_raw(skeleton, slots))
        if skeleton in self._shapes:
            shape = self._shapes[skeleton]
            if shape is not None:
                return shape.fill(slots)
            return self._inline(name, _fill_raw(skeleton, slots))
        plain = self._inline(name, _fill_raw(skeleton, slots))
        shape = _Shape.make(skeleton, lambda html: self._inline(name, html))
        if shape is not None and shape.fill(slots) != plain:
            shape = None  # not equivalent for this message: this shape always takes the plain path
        if len(self._shapes) >= _SHAPES_MAX:
            self._shapes.clear()
        self._shapes[skeleton] = shape
        return plain

    def _inline(self, name: str, html: str) -> str:
        try:
            return self._inliner.inline(html)
        except css_inline.InlineError as exc:
            raise TemplateProblem(self._show(name), f"CSS cannot be inlined: {exc}") from None

    def _finalize(self) -> Callable[[EvalContext, Any], Any]:
        """Jinja's hook on every printed value: while an HTML part records its slots, a value that is
        not markup becomes a slot (markup, such as a macro's output, stays: it is the shape)."""
        recording = self._recording

        @pass_eval_context  # never called at compile time: constants are printed through it too
        def finalize(eval_ctx: EvalContext, value: Any) -> Any:
            slots = getattr(recording, "slots", None)
            if slots is None or not eval_ctx.autoescape or hasattr(value, "__html__"):
                return value
            slots.append(str(value))  # an undefined value raises here, as it would when printed
            return f"{_SLOT_OPEN}{len(slots) - 1}{_SLOT_CLOSE}"

        return finalize

    def _sms_problems(self, template: str, ctx: dict[str, Any]) -> list[str]:
        name = f"{template}.sms.txt"
        body = self.sms(template, ctx)
        shown = self._show(name)
        problems = []
        if len(body) > SMS_MAX:
            problems.append(f"{shown}: renders to {len(body)} characters, more than one SMS ({SMS_MAX})")
        outside = sorted({c for c in body if c not in _GSM7 and c not in _GSM7_EXTENDED})
        if outside:
            problems.append(
                f"{shown}: characters outside the GSM-7 alphabet ({''.join(outside)!r}) "
                "cut an SMS segment to 70 characters"
            )
        if "STOP" not in body:
            problems.append(f"{shown}: an SMS must say how to opt out (e.g. 'Reply STOP to opt out')")
        return problems

    # -- Jinja plumbing and error locations

    def _render(self, name: str, ctx: dict[str, Any]) -> str:
        try:
            return self.environment.get_template(name).render(ctx)
        except TemplateSyntaxError as exc:
            raise self._syntax_problem(exc, name) from None
        except TemplateNotFound as exc:
            if exc.name == name:
                raise TemplateProblem(self._show(name), "missing template file") from None
            raise self._runtime_problem(exc, name, f"template {exc.name!r} not found") from None
        except Exception as exc:  # a template is user input: name the place whatever went wrong
            raise self._runtime_problem(exc, name, _describe(exc)) from None

    def _syntax_problem(self, exc: TemplateSyntaxError, name: str) -> TemplateProblem:
        where = exc.name or name
        return TemplateProblem(self._show(where, exc.filename), exc.message or "syntax error", exc.lineno)

    def _runtime_problem(self, exc: BaseException, name: str, message: str) -> TemplateProblem:
        """Find the innermost template frame in the (Jinja-rewritten) traceback: file and line."""
        frame = _innermost_template_frame(exc.__traceback__, self._root)
        if frame is None:
            return TemplateProblem(self._show(name), message)
        filename, line = frame
        where = Path(filename).relative_to(self._root).as_posix()
        return TemplateProblem(self._show(where, filename), self._explain(message, where, line), line)

    def _explain(self, message: str, name: str, line: int) -> str:
        """Jinja says "'dict object' has no attribute 'nam'"; say "'account' has no attribute 'nam'"."""
        match = re.fullmatch(r"'[^']*' has no attribute '(\w+)'", message)
        if not match:
            return message
        try:
            source = self.environment.loader.get_source(self.environment, name)[0]  # type: ignore[union-attr]
            text = source.splitlines()[line - 1]
        except (TemplateNotFound, IndexError):
            return message
        owner = re.search(rf"([A-Za-z_][\w.]*)\.{match.group(1)}\b", text)
        if owner is None:
            return message
        return f"'{owner.group(1)}' has no attribute '{match.group(1)}'"

    def _show(self, name: str, filename: str | Path | None = None) -> str:
        if filename is not None and not str(Path(filename).resolve()).startswith(self._root):
            return str(filename)
        return f"{self._shown_root}/{name}" if self._shown_root else name


class _Environment(ImmutableSandboxedEnvironment):
    """The renderer's sandbox, with each template's globals a plain dict rather than Jinja's ChainMap
    over the environment's: every render (and every `import ... with context`, two per email) makes
    a Context that copies its template's globals' keys with set(), and iterating a ChainMap is
    Python code, ~5% of an email's render. The renderer sets its globals once, before any template
    is loaded, and never changes them (as Jinja asks of any environment), so the snapshot is the
    same map."""

    def make_globals(self, d: MutableMapping[str, Any] | None) -> MutableMapping[str, Any]:
        return {**self.globals, **(d or {})}


_SLOT_OPEN, _SLOT_CLOSE = "\ue000", "\ue001"  # private-use characters around a slot's number
_SLOT = re.compile(f"{_SLOT_OPEN}(\\d+){_SLOT_CLOSE}")
# Values the HTML parser would not keep as they are (CR, NUL) or that look like slots: plain path.
_ODD_VALUE = re.compile(f"[\r\x00{_SLOT_OPEN}{_SLOT_CLOSE}]")
_SHAPES_MAX = 2048
_STRUCTURAL_ATTRIBUTES = {"class", "id", "style"}
_STYLE_BLOCK = re.compile(r"<style\b[^>]*>(.*?)</style", re.IGNORECASE | re.DOTALL)
_TAG_START = re.compile(r"<[A-Za-z/!?]")
_ATTRIBUTE_NAME = re.compile(r"([^\s\"'<>/=]+)\s*=\s*$")


def _fill_raw(skeleton: str, slots: list[str]) -> str:
    """The HTML the plain path renders: each slot replaced by its value, escaped as Jinja escapes."""
    return _SLOT.sub(lambda m: str(escape(slots[int(m.group(1))])), skeleton)


def _escape_text(value: str) -> str:
    """A value in text, as the inliner's serializer writes text."""
    return value.replace("&", "&amp;").replace("\xa0", "&nbsp;").replace("<", "&lt;").replace(">", "&gt;")


def _escape_attribute(value: str) -> str:
    """A value in a double-quoted attribute, as the inliner's serializer writes attributes."""
    return value.replace("&", "&amp;").replace("\xa0", "&nbsp;").replace('"', "&quot;")


def _slot_places(html: str) -> list[tuple[int, str | None]] | None:
    """Each slot of `html` in order: (number, attribute name or None for text); None when a slot sits
    anywhere else (a tag or attribute name, an unquoted value, a comment, a raw-text element)."""
    places: list[tuple[int, str | None]] = []
    position, length = 0, len(html)
    while position < length:
        tag = _TAG_START.search(html, position)
        end_text = tag.start() if tag else length
        places += [(int(m.group(1)), None) for m in _SLOT.finditer(html, position, end_text)]
        if tag is None:
            break
        if html.startswith(("<!--", "<script", "<style", "<textarea"), tag.start()):
            close = {"<!--": "-->", "<script": "</script", "<style": "</style", "<textarea": "</textarea"}
            opener = next(o for o in close if html.startswith(o, tag.start()))
            finish = html.find(close[opener], tag.start())
            finish = length if finish < 0 else finish
            if _SLOT.search(html, tag.start(), finish):
                return None
            position = finish
            continue
        i, quote, value_start = tag.start() + 1, "", 0
        while i < length:
            char = html[i]
            if quote:
                if char == quote:
                    attribute = _ATTRIBUTE_NAME.search(html, tag.start(), value_start - 1)
                    for m in _SLOT.finditer(html, value_start, i):
                        if attribute is None or attribute.group(1).lower() in _STRUCTURAL_ATTRIBUTES:
                            return None
                        places.append((int(m.group(1)), attribute.group(1)))
                    quote = ""
            elif char in "\"'":
                quote, value_start = char, i + 1
            elif char == ">":
                break
            elif char == _SLOT_OPEN:
                return None
            i += 1
        position = i + 1
    return places


@dataclass(frozen=True)
class _Shape:
    """The inlined markup of one shape, cut at its slots: literal parts and (slot, in attribute)."""

    parts: tuple[str, ...]
    slots: tuple[tuple[int, bool], ...]

    @classmethod
    def make(cls, skeleton: str, inline: Callable[[str], str]) -> _Shape | None:
        before = _slot_places(skeleton)
        if before is None:
            return None
        for css in _STYLE_BLOCK.findall(skeleton):
            selectors = re.sub(r"\{[^}]*\}", "", re.sub(r"/\*.*?\*/", "", css, flags=re.DOTALL))
            if "[" in selectors or ":" in selectors or "@" in selectors:
                return None  # the stylesheet could look at values, not only the shape
        inlined = inline(skeleton)
        after = _slot_places(inlined)
        if after is None or sorted(n for n, _ in after) != sorted(n for n, _ in before):
            return None
        pieces = _SLOT.split(inlined)
        return cls(
            parts=tuple(pieces[0::2]),
            slots=tuple((n, where is not None) for n, where in after),
        )

    def fill(self, values: list[str]) -> str:
        out = [self.parts[0]]
        for (number, in_attribute), part in zip(self.slots, self.parts[1:], strict=True):
            value = values[number]
            out.append(_escape_attribute(value) if in_attribute else _escape_text(value))
            out.append(part)
        return "".join(out)


def _shown(directory: Path) -> str:
    """The templates directory as people see it: relative to the working directory when inside it."""
    try:
        return directory.resolve().relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        return directory.as_posix()


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.hrefs: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            self.hrefs.update(value.strip() for name, value in attrs if name == "href" and value)


def _hrefs(html: str) -> set[str]:
    """The targets of the `<a href>` links of an HTML document, entities decoded."""
    parser = _Links()
    parser.feed(html)
    parser.close()
    return parser.hrefs


def _survey_argument(call: nodes.Call, callers: Mapping[str, tuple[int, str]]) -> nodes.Node | None:
    """The expression a call passes as its survey name, when it calls survey_url or a macro that
    forwards to it (`callers`: name -> position and name of the survey parameter)."""
    callee = call.node
    if isinstance(callee, nodes.Name):
        name = callee.name
    elif isinstance(callee, nodes.Getattr):
        name = callee.attr
    else:
        return None
    if name not in callers:
        return None
    position, parameter = callers[name]
    if len(call.args) > position:
        return call.args[position]
    return next((kw.value for kw in call.kwargs if kw.key == parameter), None)


def _innermost_template_frame(tb: TracebackType | None, root: str) -> tuple[str, int] | None:
    found = None
    while tb is not None:
        filename = tb.tb_frame.f_code.co_filename
        if filename.startswith(root) and not filename.endswith(".py"):
            found = (filename, tb.tb_lineno)
        tb = tb.tb_next
    return found


def _describe(exc: BaseException) -> str:
    """Jinja's own messages name templates, variables and attributes, never their values; any other
    error's text may quote a value of the context (a contact's name in a ValueError), and it ends
    up in `touches.error`, logs and artifacts: only its type is kept."""
    if type(exc).__module__ == "jinja2.exceptions":
        return str(exc)
    return f"{type(exc).__name__} while rendering (details withheld: they may quote customer data)"


# --- sample data ---------------------------------------------------------------------------------


def _sample_survey_url(survey: str, answer: str | int) -> str:
    return f"https://example.invalid/s/{survey}/{answer}"


def sample_context(**overrides: Any) -> dict[str, Any]:
    """A realistic context for `techtouch check` and previews, shaped exactly like the engine's.

    A mapping override is merged into the sample's mapping (`contact={"name": "<b>"}` keeps the
    contact's other fields); anything else replaces the value.
    """
    context: dict[str, Any] = {
        "account": {
            "id": "acc_000123",
            "name": "Northwind Traders",
            "segment": "tech_touch",
            "arr": 9000.0,
            "renewal_date": date(2027, 3, 3),
            "days_to_renewal": 97,
            "usage_change_30d": -0.42,
            "key_actions_30d": 318,
            "logins_14d": 23,
            "active_users_7d": 6.4,
            "health": 48.5,
            "health_color": "yellow",
            "csm_name": "Dana Reyes",
            "csm_email": "dana.reyes@example.com",
        },
        "contact": {"id": "con_000456", "name": "Sam Okafor", "first_name": "Sam", "role": "admin"},
        "sender": {
            "key": "csm",
            "name": "Dana Reyes",
            "email": "dana.reyes@example.com",
            "title": "Customer Success Manager",
        },
        "journey": {"id": "renewal", "name": "Renewal"},
        "milestone": {"id": "announce", "title": "Renewal likelihood answered"},
        "touch_key": "42:announce:email",
        "links": {
            "unsubscribe": "https://example.invalid/u/sample",
            "preferences": "https://example.invalid/p/sample",
        },
        "survey_url": _sample_survey_url,
    }
    for key, value in overrides.items():
        base = context.get(key)
        if isinstance(value, Mapping) and isinstance(base, Mapping):
            context[key] = {**base, **value}
        else:
            context[key] = value
    return context
