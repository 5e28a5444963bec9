"""Where each ``{{ name }}`` stands in shell code a user wrote, and what replaces it.

A value never becomes shell code: every placeholder is replaced by a reference to a variable
that holds the value (``"${jp_p_name}"``, or ``${RUN_ID}``), never by the value's text, so
whatever the value holds, bash only ever expands it. Which form of the reference fits depends
on where the placeholder stands, and that is what ``sites`` works out: unquoted words get a
quoted expansion, text inside double quotes or an unquoted here-document a bare one, single
quotes are closed around the expansion and reopened.

Some places would still let bash, or a program the user calls, read the value as code or as a
variable name: arithmetic (``$(( ))``, ``[[ -eq ]]``, subscripts, ``let``), variable names
(``printf -v``, ``declare -a``, ``${!x}``), text another interpreter parses again
(``bash -c``, ``eval``, ``ssh``, ``python -c``, ``awk``, ``sed``...) and single quotes (whose
content is often such code). There the build checks every value the placeholder takes, which
it knows, and refuses the ones that could change how the code reads (``value_problem``).
Places where nothing expands at all (a quoted here-document, after a backslash) are refused.
A placeholder in a comment is left as it is.

The reading is a lexer of bash's quoting and nesting, not a full parser; where it cannot be
sure it refuses, so a misreading costs a build error, never an execution.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Callable
from dataclasses import dataclass, field

from .shell import PLACEHOLDER, SAFE, Param, parse_text, variable, word_ref

# Where a placeholder stands (its quoting), which decides the text that replaces it.
WORD, DQUOTE, PARAM, SINGLE, ANSI, ARITH = "word", "dquote", "param", "single", "ansi", "arith"
COMMENT, QHEREDOC, ESCAPED, NAME, UNSURE = "comment", "qheredoc", "escaped", "name", "unsure"

# Values that cannot change how any shell or common interpreter reads the text around them.
INERT = re.compile(rf"(?:{SAFE.pattern})?", re.ASCII)
INTEGER = re.compile(r"[-+]?[0-9]+")
IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
NUMBER = re.compile(r"[-+]?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?")

SHELLS = {"bash", "sh", "dash", "zsh", "ksh", "ash", "mksh", "busybox", "fish"}
PYTHONS = re.compile(r"(python|pypy|ipython)[0-9.]*")
EVAL_FLAG = {"perl": "eE", "ruby": "eE", "node": "ep", "nodejs": "ep", "julia": "eE",
             "Rscript": "e", "php": "r", "lua": "e", "luajit": "e"}
AWKS = {"awk", "gawk", "mawk", "nawk"}
ALL_ARGS = {"eval", "watch", "parallel", "tmux", "screen"}
# Programs that parse code as a shell does: a value of inert characters is one plain word
# there. Every other interpreter (python, perl, awk, sed, ...) takes only numbers.
DASH_C = {"su", "runuser", "flock", "script"}
SHELL_READERS = {*SHELLS, *ALL_ARGS, *DASH_C, "trap", "source", ".", "ssh", "sbatch"}
SSH_VALUED = set("bcDEeFIiJLlmOopQRSWw")
DECLARES = {"declare", "typeset", "local", "readonly", "export"}
NAME_ARGS = {"read", "mapfile", "readarray", "unset"}
RESERVED = {"if", "then", "else", "elif", "fi", "do", "done", "while", "until", "!", "{", "}",
            "time", "function", "coproc"}
ARITH_OPS = {"-eq", "-ne", "-lt", "-le", "-gt", "-ge"}
# Variables whose assignment bash evaluates as arithmetic.
ARITH_NAMES = {"RANDOM", "SRANDOM", "OPTIND", "HISTCMD"}
METACHARS = set(" \t\n;&|()<>")
# What "$" opens: (text, frame, what closes it); the last two only outside double quotes.
DOLLAR_OPENERS = [("$((", "arith", "))"), ("$(", "cmd", ")"), ("${", "pe", ""),
                  ("$[", "arith", "]"), ("$'", "ansi", ""), ('$"', "dq", "")]


@dataclass(frozen=True)
class Site:
    """One placeholder: its span in the code, its name, where it stands and who reads it."""

    start: int
    end: int
    name: str
    quoting: str
    reads: str = ""  # '' (bash, once), 'arith', 'name', or the program that parses it again


@dataclass
class _Word:
    text: str = ""  # the unquoted literal characters
    literal: bool = True  # no quotes or expansions in it
    quoted: bool = False  # has a quoted or escaped part, so it never expands to nothing
    procsub: bool = False  # holds a process substitution <( ) or >( )
    assign: bool = False  # NAME=... at command position
    places: list[tuple[int, bool]] = field(default_factory=list)  # (site, after an '=')


@dataclass
class _Heredoc:
    delim: str
    quoted: bool
    strip: bool
    reader: str | None = None  # the program that reads the body as code, once known


@dataclass
class _Command:
    words: list[_Word] = field(default_factory=list)
    heredocs: list[_Heredoc] = field(default_factory=list)
    inputs: list[_Word] = field(default_factory=list)  # what < and <<< feed it


@dataclass
class _Frame:
    kind: str  # cmd dq sq ansi pe arith heredoc
    closer: str = ""
    # cmd frames: the word being read, the simple command and the pipeline it belongs to
    word: _Word | None = None
    command: _Command = field(default_factory=_Command)
    pipeline: list[_Command] = field(default_factory=list)
    cmdpos: bool = True
    after_for: bool = False
    redirect: str = ""  # the operator whose target the next word is
    array: int = 0  # depth of the ( ) of an array assignment, where [i]= is a subscript
    after_function: bool = False
    case: list[str] = field(default_factory=list)
    cond: list[_Word] | None = None
    depth: int = 0
    pending: list[_Heredoc] = field(default_factory=list)  # bodies start at the next newline
    inner: list[int] = field(default_factory=list)  # sites anywhere inside this frame
    # pe frames
    phase: str = ""
    quoted: bool = False
    pattern: bool = False
    # heredoc frames
    line_start: bool = True


class _Lexer:
    def __init__(self, code: str) -> None:
        self.code = code
        self.i = 0
        self.starts = {m.start(): m for m in PLACEHOLDER.finditer(code)}
        self.found: list[Site] = []
        self.reads: dict[int, str] = {}
        self.stack = [_Frame("cmd")]
        # NAME=value anywhere (NAME, sites after '='), and names declared integer (-i)
        self.assigned: list[tuple[str, list[int]]] = []
        self.integers: set[str] = set(ARITH_NAMES)

    def run(self) -> list[Site]:
        steps = {"cmd": self._cmd, "dq": self._dq, "sq": self._sq, "ansi": self._ansi,
                 "pe": self._pe, "arith": self._arith, "heredoc": self._heredoc}
        order = sorted(self.starts)
        while self.i < len(self.code):
            before = self.i
            steps[self.stack[-1].kind]()
            self._skipped(order, before)
        top = self.stack[0]
        self._end_command(top)
        for name, places in self.assigned:
            if name in self.integers:  # bash evaluates what is assigned to them
                self._mark(places, "arith")
        unsure = len(self.stack) > 1 or bool(top.pending)
        out = []
        for n, site in enumerate(self.found):
            quoting = UNSURE if unsure and site.quoting != COMMENT else site.quoting
            out.append(Site(site.start, site.end, site.name, quoting,
                            self.reads.get(n, site.reads)))
        return sorted(out, key=lambda site: site.start)

    def _skipped(self, order: list[int], before: int) -> None:
        """A step that read past the start of a placeholder without seeing it (part of an
        operator, say) leaves it unplaced: it is recorded as one whose place is unsure."""
        k = bisect.bisect_right(order, before)
        seen = {site.start for site in self.found}
        while k < len(order) and order[k] < self.i:
            if order[k] not in seen:
                m = self.starts[order[k]]
                self.found.append(Site(m.start(), m.end(), m.group(1), UNSURE))
            k += 1

    # -- where a placeholder belongs -------------------------------------------------------
    def _sink(self) -> _Frame:
        """The frame whose command (or here-document) the text at hand belongs to."""
        return next(f for f in reversed(self.stack) if f.kind in ("cmd", "heredoc"))

    def _record(self, quoting: str) -> None:
        m = self.starts[self.i]
        arith = any(f.kind == "arith" or (f.kind == "pe" and f.phase == "arith")
                    for f in self.stack)
        index = len(self.found)
        self.found.append(Site(m.start(), m.end(), m.group(1), quoting,
                               "arith" if arith else ""))
        self.i = m.end()
        if quoting != COMMENT:
            self._attach([index])

    def _attach(self, sites: list[int]) -> None:
        sink = self._sink()
        if sink.kind == "heredoc":
            self._mark(sites, sink.pending[0].reader or "")
            # the body is also text of the command (or $( )) that holds the here-document
            self.stack[self.stack.index(sink) - 1].inner += sites
            return
        word = self._word(sink)
        word.literal = False
        word.quoted = True  # what replaces a placeholder is quoted: it never vanishes
        word.places += [(n, "=" in word.text or word.assign) for n in sites]
        sink.inner += sites

    def _touch(self) -> None:
        """The word at hand holds quotes or expansions: it is no plain literal."""
        sink = self._sink()
        if sink.kind == "cmd":
            self._word(sink).literal = False

    def _mark(self, sites: list[int], reads: str) -> None:
        if not reads:
            return
        for n in sites:
            if self.reads.get(n, self.found[n].reads) in ("", "name") or reads == "arith":
                self.reads[n] = reads

    def _at(self, text: str, offset: int = 0) -> bool:
        return self.code.startswith(text, self.i + offset)

    # -- words, commands, pipelines --------------------------------------------------------
    @staticmethod
    def _word(cmd: _Frame) -> _Word:
        if cmd.word is None:
            cmd.word = _Word()
        return cmd.word

    def _end_word(self, cmd: _Frame) -> None:
        word, cmd.word = cmd.word, None
        if word is None or self._special_word(cmd, word):
            return
        text = word.text if word.literal else None
        if word.assign:
            self.assigned.append((word.text.split("=")[0].rstrip("+"),
                                  [n for n, after_eq in word.places if after_eq]))
        if cmd.after_function:  # function NAME: the body's first word follows
            cmd.after_function = False
            return
        cmd.command.words.append(word)
        cmd.after_for = cmd.cmdpos and text in ("for", "select")
        cmd.after_function = cmd.cmdpos and text == "function"
        if cmd.cmdpos and (text in RESERVED or word.assign):
            return
        cmd.cmdpos = False

    def _special_word(self, cmd: _Frame, word: _Word) -> bool:
        """Words that are no argument: a redirection's target (< and <<< feed stdin), the
        words of [[ ]], and those that move a case statement along."""
        if cmd.redirect:
            if cmd.redirect in ("<", "<<<"):
                cmd.command.inputs.append(word)
            cmd.redirect = ""
            return True
        if cmd.cond is not None:
            if word.literal and word.text == "]]":
                self._end_cond(cmd)
            else:
                cmd.cond.append(word)
            return True
        text = word.text if word.literal else None
        if cmd.case and self._case_word(cmd, text):
            return True
        if cmd.cmdpos and text == "[[":
            cmd.cond = []
            return True
        if cmd.cmdpos and text == "case":
            cmd.case.append("subject")
            return True
        return False

    def _case_word(self, cmd: _Frame, text: str | None) -> bool:
        """Words that move a case statement along; True when the word was one of them."""
        state = cmd.case[-1]
        if state == "subject":
            cmd.case[-1] = "in"
            return True
        if state == "in" and text == "in":
            cmd.case[-1] = "pattern"
            return True
        if text == "esac" and (state == "pattern" or cmd.cmdpos):
            self._end_command(cmd)
            cmd.case.pop()
            return True
        return False

    def _end_cond(self, cmd: _Frame) -> None:
        words, cmd.cond = cmd.cond or [], None
        arith = any(w.literal and w.text in ARITH_OPS for w in words)
        for k, w in enumerate(words):
            sites = [n for n, _ in w.places]
            if arith:
                self._mark(sites, "arith")
            elif k and words[k - 1].literal and words[k - 1].text == "-v":
                self._mark(sites, "name")
        cmd.cmdpos = False

    def _end_command(self, cmd: _Frame, *, pipe: bool = False) -> None:
        self._end_word(cmd)
        self.integers |= _declared_integers(cmd.command.words)
        cmd.pipeline.append(cmd.command)
        cmd.command = _Command()
        cmd.cmdpos, cmd.after_for = True, False
        if not pipe:
            pipeline, cmd.pipeline = cmd.pipeline, []
            _analyse_pipeline(pipeline, self._mark)

    # -- cmd frames: top level, $( ), ( ), ` ` ----------------------------------------------
    def _cmd(self) -> None:
        cmd = self.stack[-1]
        c = self.code[self.i]
        if self.i in self.starts:
            self._record(WORD)
        elif c == "#" and cmd.word is None:
            self._comment()
        elif c in " \t":
            self._end_word(cmd)
            self.i += 1
        elif c == "\n":
            self._newline(cmd)
        elif cmd.closer == "`" and c == "`":
            self._close(cmd)
        else:
            self._cmd_char(cmd, c)

    def _cmd_char(self, cmd: _Frame, c: str) -> None:
        if c == "\\":
            self._escape(cmd)
        elif c in "'\"`$":
            self._open(c, in_dq=False)
        elif c in METACHARS:
            self._operator(cmd, c)
        elif c == "[" and (self._subscript_start(cmd) or cmd.array and (
                cmd.word is None or self.code[self.i - 1] == "(")):
            self._word(cmd).literal = False
            self.stack.append(_Frame("arith", closer="]"))
            self.i += 1
        else:
            word = self._word(cmd)
            word.text += c
            if c == "=" and cmd.cmdpos and IDENTIFIER.fullmatch(word.text[:-1].rstrip("+")):
                word.assign = True
            self.i += 1

    def _subscript_start(self, cmd: _Frame) -> bool:
        word = cmd.word
        if word is None or not word.literal or not IDENTIFIER.fullmatch(word.text):
            return False
        words = cmd.command.words
        declaring = bool(words) and words[0].literal and words[0].text in DECLARES
        return cmd.cmdpos or declaring

    def _comment(self) -> None:
        end = self.code.find("\n", self.i)
        end = len(self.code) if end < 0 else end
        while self.i < end:
            if self.i in self.starts:
                self._record(COMMENT)
            else:
                self.i += 1

    def _newline(self, cmd: _Frame) -> None:
        if cmd.cond is None:
            self._end_command(cmd)
        else:
            self._end_word(cmd)
        self.i += 1
        if cmd.pending:
            frame = _Frame("heredoc")
            frame.pending, cmd.pending = cmd.pending, []
            self.stack.append(frame)

    def _escape(self, cmd: _Frame | None) -> None:
        if self.i + 1 in self.starts:
            self.i += 1
            self._record(ESCAPED)
            return
        if cmd is not None and not self._at("\\\n"):
            self._word(cmd).literal = False
            self._word(cmd).quoted = True
        self.i += 2

    def _close(self, cmd: _Frame) -> None:
        self._end_command(cmd)
        self.stack.pop()
        self.i += 1
        if self.stack[-1].kind != "heredoc":
            self._touch()
        if cmd.inner:
            self._attach(cmd.inner)

    def _operator(self, cmd: _Frame, c: str) -> None:
        if cmd.cond is not None:  # inside [[ ]]: ( ) < > && || only separate words
            self._end_word(cmd)
            self.i += 1
        elif c == "(":
            self._open_paren(cmd)
        elif c == ")":
            self._close_paren(cmd)
        elif c == "<" and self._at("<<") and not self._at("<<<"):
            self._end_word(cmd)
            self._heredoc_operator(cmd)
        elif c in "<>" and self._at("(", 1):
            if not cmd.redirect:
                self._end_word(cmd)
            self._word(cmd).procsub = True
            self.stack.append(_Frame("cmd", closer=")"))
            self.i += 2
        elif c in "<>" or (c == "&" and self._at(">", 1)):
            self._redirect(cmd)
        elif c == "|" and cmd.case and cmd.case[-1] == "pattern":
            self._end_word(cmd)
            self.i += 1
        else:
            self._separator(cmd, c)

    def _redirect(self, cmd: _Frame) -> None:
        self._end_word(cmd)
        m = re.compile(r"&>>?|[<>]&|<<<|>>|>\||<>|[<>]").match(self.code, self.i)
        self.i = m.end() if m else self.i + 1
        if not self._at("-") or self.code[self.i - 1] != "&":
            cmd.redirect = m.group(0) if m else "<"

    def _separator(self, cmd: _Frame, c: str) -> None:
        body = bool(cmd.case) and cmd.case[-1] == "body"
        pipe = c == "|" and not self._at("||")
        self._end_command(cmd, pipe=pipe)
        if body and self._at(";;"):
            cmd.case[-1] = "pattern"
            self.i += 3 if self._at(";;&") else 2
        elif body and self._at(";&"):
            cmd.case[-1] = "pattern"
            self.i += 2
        elif self._at("||") or self._at("&&") or self._at("|&"):
            self.i += 2
        else:
            self.i += 1

    def _open_paren(self, cmd: _Frame) -> None:
        if self._at("()") and not cmd.case and self._function_header(cmd):
            self.i += 2
        elif cmd.case and cmd.case[-1] == "pattern":
            self.i += 1
        elif (cmd.cmdpos or cmd.after_for) and cmd.word is None and self._at("(("):
            cmd.cmdpos, cmd.after_for = False, False
            self.stack.append(_Frame("arith", closer="))"))
            self.i += 2
        elif cmd.cmdpos and cmd.word is None:
            self.stack.append(_Frame("cmd", closer=")"))
            self.i += 1
        else:  # array assignment x=( ... ), extglob @( )
            word = self._word(cmd)
            if word.assign and word.text.endswith("=") or cmd.array:
                cmd.array += 1
            word.literal = False
            cmd.depth += 1
            self.i += 1

    def _function_header(self, cmd: _Frame) -> bool:
        """NAME() (or NAME ()) at command position: a function's name, not a command; the
        body that follows starts at command position again."""
        word = cmd.word
        if word is not None:
            name = word.text
            if not (cmd.cmdpos and word.literal and re.fullmatch(r"[^\s=]+", name)):
                return False
            cmd.word = None
        elif len(cmd.command.words) == 1 and cmd.command.words[0].literal:
            cmd.command.words.clear()
        else:
            return False
        cmd.cmdpos = True
        return True

    def _close_paren(self, cmd: _Frame) -> None:
        if cmd.depth:
            cmd.depth -= 1
            cmd.array = max(0, cmd.array - 1)
            self.i += 1
            return
        self._end_word(cmd)
        if cmd.case and cmd.case[-1] == "pattern":
            cmd.case[-1] = "body"
            cmd.cmdpos = True
            self.i += 1
        elif cmd.closer == ")":
            self._close(cmd)
        else:  # an unbalanced ")": bash would reject the code
            self.stack.append(_Frame("cmd", closer="?"))
            self.i += 1

    def _heredoc_operator(self, cmd: _Frame) -> None:
        self.i += 2
        strip = self._at("-")
        self.i += 1 if strip else 0
        while self.i < len(self.code) and self.code[self.i] in " \t":
            self.i += 1
        delim, quoted = "", False
        while self.i < len(self.code) and self.code[self.i] not in METACHARS:
            c = self.code[self.i]
            if self.i in self.starts:
                self._record(NAME)  # a delimiter made of a value
                quoted = True
            elif c in "'\"":
                end = self.code.find(c, self.i + 1)
                end = len(self.code) - 1 if end < 0 else end
                delim += self.code[self.i + 1:end]
                quoted, self.i = True, end + 1
            elif c == "\\":
                delim += self.code[self.i + 1:self.i + 2]
                quoted, self.i = True, self.i + 2
            else:
                delim += c
                self.i += 1
        doc = _Heredoc(delim, quoted, strip)
        cmd.command.heredocs.append(doc)
        cmd.pending.append(doc)

    # -- quotes and expansions -------------------------------------------------------------
    def _open(self, c: str, *, in_dq: bool) -> None:
        if self.stack[-1].kind != "heredoc":
            self._touch()
        if self.stack[-1].kind == "cmd" and (c in "'\"" or self._at("$'") or self._at('$"')):
            self._word(self.stack[-1]).quoted = True
        if c == "'":
            self.stack.append(_Frame("sq"))
            self.i += 1
        elif c == '"':
            self.stack.append(_Frame("dq"))
            self.i += 1
        elif c == "`":
            self.stack.append(_Frame("cmd", closer="`"))
            self.i += 1
        else:
            self._dollar(in_dq)

    def _dollar(self, in_dq: bool) -> None:
        quoted = in_dq or any(f.kind in ("dq", "heredoc") for f in self.stack)
        if self.i + 1 in self.starts:
            self.i += 1
            self._record(NAME)  # $ right before a value: a variable named by the value
            return
        for opener, kind, closer in DOLLAR_OPENERS:
            if self._at(opener) and not (quoted and kind in ("ansi", "dq")):
                frame = _Frame(kind, closer=closer)
                if kind == "pe":
                    frame.phase, frame.quoted = "start", quoted
                self.stack.append(frame)
                self.i += len(opener)
                return
        self.i += 1

    def _quoted(self, quoting: str, closer: str, *, escapes: bool, expands: bool) -> None:
        """A step inside quotes: "...", '...' or $'...'."""
        c = self.code[self.i]
        if self.i in self.starts:
            self._record(quoting)
        elif c == closer:
            self.stack.pop()
            self.i += 1
        elif escapes and c == "\\":
            self._escape(None)
        elif expands and c in "`$":
            self._open(c, in_dq=True)
        else:
            self.i += 1

    def _dq(self) -> None:
        self._quoted(DQUOTE, '"', escapes=True, expands=True)

    def _sq(self) -> None:
        self._quoted(SINGLE, "'", escapes=False, expands=False)

    def _ansi(self) -> None:
        self._quoted(ANSI, "'", escapes=True, expands=False)

    def _pe(self) -> None:
        frame = self.stack[-1]
        if frame.phase == "start":
            self._pe_name(frame)
        elif frame.phase == "op":
            self._pe_operator(frame)
        elif frame.phase == "arith":
            self._pe_arith(frame)
        else:
            self._pe_word(frame)

    def _pe_name(self, frame: _Frame) -> None:
        frame.phase = "op"
        if self._at("#") and not self._at("}", 1) or self._at("!"):
            self.i += 1
        if self.i in self.starts:
            self._record(NAME)
            return
        m = re.compile(r"[A-Za-z_][A-Za-z0-9_]*|[0-9]+|[@*#?$!-]").match(self.code, self.i)
        if m:
            self.i = m.end()
        if self._at("["):
            self.stack.append(_Frame("arith", closer="]"))
            self.i += 1

    def _pe_operator(self, frame: _Frame) -> None:
        c = self.code[self.i]
        nxt = self.code[self.i + 1:self.i + 2]
        if self.i in self.starts:
            self._record(NAME)
        elif c == "}":
            self.stack.pop()
            self.i += 1
        elif c == ":" and nxt in ("-", "=", "+", "?"):
            frame.phase = "word"
            self.i += 2
        elif c == ":":
            frame.phase = "arith"
            self.i += 1
        elif c in "-=+?":
            frame.phase = "word"
            self.i += 1
        elif c in "#%/^,":
            frame.phase, frame.pattern = "word", True
            self.i += 2 if nxt == c or (c == "/" and nxt in ("#", "%")) else 1
        elif c == "@":
            self.i += 2
        else:  # not an operator bash knows; read on as a word
            frame.phase = "word"

    def _pe_word(self, frame: _Frame) -> None:
        c = self.code[self.i]
        if self.i in self.starts:
            self._record(PARAM)
        elif c == "}":
            self.stack.pop()
            self.i += 1
        elif c == "\\":
            self._escape(None)
        elif c == "'" and frame.quoted and not frame.pattern:
            self.i += 1  # inside "${x:-...}" a single quote is an ordinary character
        elif c in "'\"`$":
            self._open(c, in_dq=False)
        else:
            self.i += 1

    def _pe_arith(self, frame: _Frame) -> None:
        c = self.code[self.i]
        if self.i in self.starts:
            self._record(ARITH)
        elif c == "}" and not frame.depth:
            self.stack.pop()
            self.i += 1
        else:
            self._arith_char(frame, c)

    def _arith(self) -> None:
        frame = self.stack[-1]
        c = self.code[self.i]
        if self.i in self.starts:
            self._record(ARITH)
        elif frame.closer == "))" and c == ")" and not frame.depth and self._at("))"):
            self.stack.pop()
            self.i += 2
        elif frame.closer == "]" and c == "]" and not frame.depth:
            self.stack.pop()
            self.i += 1
        else:
            self._arith_char(frame, c)

    def _arith_char(self, frame: _Frame, c: str) -> None:
        if c in "([":
            frame.depth += 1
            self.i += 1
        elif c in ")]":
            frame.depth = max(0, frame.depth - 1)
            self.i += 1
        elif c == "\\":
            self._escape(None)
        elif c in "'\"`$":
            self._open(c, in_dq=False)
        else:
            self.i += 1

    def _heredoc(self) -> None:
        frame = self.stack[-1]
        doc = frame.pending[0]
        if frame.line_start:
            end = self.code.find("\n", self.i)
            end = len(self.code) if end < 0 else end
            line = self.code[self.i:end]
            if (line.lstrip("\t") if doc.strip else line) == doc.delim:
                self.i = end + 1
                frame.pending.pop(0)
                if not frame.pending:
                    self.stack.pop()
                return
            frame.line_start = False
            if doc.quoted:
                self._quoted_line(end)
                frame.line_start = True
                self.i = min(end + 1, len(self.code))
                return
        c = self.code[self.i]
        if self.i in self.starts:
            self._record(DQUOTE)
        elif c == "\n":
            frame.line_start = True
            self.i += 1
        elif c == "\\":
            self._escape(None)
        elif c in "`$":
            self._open(c, in_dq=True)
        else:
            self.i += 1

    def _quoted_line(self, end: int) -> None:
        while self.i < end:
            if self.i in self.starts:
                self._record(QHEREDOC)
            else:
                self.i += 1


def _declared_integers(words: list[_Word]) -> set[str]:
    """Names that ``declare -i`` (or local, typeset, ...) gives the integer attribute."""
    names = [w.text if w.literal else None for w in words]
    if not names or names[0] not in DECLARES:
        return set()
    options = "".join((n or "")[1:] for n in names[1:] if (n or "").startswith("-"))
    if "i" not in options:
        return set()
    return {w.text.split("=")[0] for w in words[1:] if w.text and not w.text.startswith("-")}


def _base(text: str) -> str:
    return text.rsplit("/", 1)[-1]


Mark = Callable[[list[int], str], None]


def _analyse_pipeline(pipeline: list[_Command], mark: Mark) -> None:
    """Mark what the commands of one pipeline read as code, arithmetic or names; a program
    that reads code on its standard input (``... | bash``, ``python <<EOF``, ``bash <<<``)
    reads whatever the commands before it print, and what is redirected into it."""
    for command in pipeline:
        _analyse(command.words, mark)
    for j, command in enumerate(pipeline):
        reader = _stdin_reader(command.words)
        if reader:
            _feed(pipeline[:j + 1], reader, mark)
    for command in pipeline:
        for doc in command.heredocs:
            doc.reader = doc.reader or ""


def _feed(commands: list[_Command], reader: str, mark: Mark) -> None:
    """The last of ``commands`` reads code on stdin: what the others print, and what is
    redirected into it (here-documents of any of them, < and <<< of itself), is code."""
    for earlier in commands[:-1]:
        for word in earlier.words:
            mark([n for n, _ in word.places], reader)
    for word in commands[-1].inputs:
        mark([n for n, _ in word.places], reader)
    for each in commands:
        for doc in each.heredocs:
            doc.reader = doc.reader or reader


# A command whose name is not a plain word ("$SHELL", `which bash`) may be any program:
# it is read as a shell, the kind that takes the most as code.
UNKNOWN = "sh"
STDIN_FILES = ("-", "/dev/stdin", "/dev/fd/0")


def _program_names(words: list[_Word]) -> tuple[int, list[str]]:
    """The index of the command's name, and each word's program name: the basename of a
    plain word, the unknown program for a name that is not a plain word, '' otherwise."""
    names = [w.text if w.literal else None for w in words]
    first = next((k for k, w in enumerate(words) if not w.assign and (
        names[k] not in RESERVED or names[k] is None)), len(words))
    programs = [_base(n) if n else "" for n in names]
    if first < len(words) and names[first] is None:
        programs[first] = UNKNOWN
    return first, programs


def _is_interpreter(name: str) -> bool:
    return name in SHELLS or bool(PYTHONS.fullmatch(name)) or name in EVAL_FLAG


def _stdin_reader(words: list[_Word]) -> str:
    """The interpreter of a command that runs code read from its standard input, if any."""
    first, programs = _program_names(words)
    names = [w.text if w.literal else None for w in words]
    for k in range(first, len(words)):
        name = programs[k]
        if name == "ssh":
            operands = [n for n in names[k + 1:] if n is None or not n.startswith("-")]
            return "ssh" if len(operands) <= 1 or None in operands[:2] else ""
        if _is_interpreter(name) or name in ("source", "."):
            options = names[k + 1:]
            operands = [n for n in options if n is None or not n.startswith("-")
                        or n in STDIN_FILES]
            # a word that is not plain may expand to nothing: then the program reads stdin
            if not operands or operands[0] in (*STDIN_FILES, None) or "-s" in options:
                return name
            return ""
    return ""


def _analyse(words: list[_Word], mark: Mark) -> None:
    """Mark placeholders of one simple command that a program reads as code or as names."""
    places = [[n for n, _ in w.places] for w in words]
    first, programs = _program_names(words)
    for k in range(first, len(words)):
        if not programs[k]:
            continue
        reader = _reader(programs[k], words, list(range(k + 1, len(words))))
        if reader is not None:
            label, targets = reader
            # an unquoted expansion may vanish, and then the next word takes its place
            while targets and targets[-1] + 1 < len(words) and not words[targets[-1]].literal \
                    and not words[targets[-1]].quoted:
                targets = [*targets, targets[-1] + 1]
            for t in targets:
                mark(places[t], label)
    names = [w.text if w.literal else None for w in words]
    # words that are not plain may expand to nothing, so the next word may be the command;
    # 'command' and 'builtin' run the builtin named after them
    k = first
    while k < len(words):
        _builtins(names[k] or "", words, names, places, k, mark)
        if names[k] is not None and names[k] not in ("command", "builtin"):
            break
        k += 1


def _reader(name: str, words: list[_Word],
            rest: list[int]) -> tuple[str, list[int]] | None:
    """(program, indexes of the words it parses as code) for a word naming an interpreter."""
    names = [w.text if w.literal else None for w in words]
    if name in ALL_ARGS:
        return name, rest
    if name in ("trap", "source", "."):
        operands = _operands(names, rest)
        code = operands[:1] if name == "trap" else [k for k in operands[:1] if words[k].procsub]
        return name, code
    if name in AWKS:
        return name, _program(names, rest, {"-F", "-v", "-f"}, "-f")
    if name == "sed":
        return "sed", _program(names, rest, {"-e", "-f", "--expression", "-l"}, "-f")
    if name == "ssh":
        return "ssh", _ssh(names, rest)
    if name == "sbatch":
        return "sbatch --wrap", [k for k in rest if words[k].text.startswith("--wrap=")] + [
            k + 1 for k in rest if words[k].text == "--wrap" and k + 1 < len(words)]
    if name in SHELLS:
        return f"{name} -c", _shell_code(words, names, rest)
    if PYTHONS.fullmatch(name) or name in EVAL_FLAG:
        letters = "c" if PYTHONS.fullmatch(name) else EVAL_FLAG[name]
        label = f"{name} -{letters[0]}"
        code = _letter_flag([w.text for w in words], rest, letters)
        operands = _operands(names, rest)
        return label, code or [k for k in operands[:1] if words[k].procsub]
    if name in DASH_C:
        return f"{name} -c", [k + 1 for k in rest if names[k] == "-c" and k + 1 < len(names)]
    return None


def _operands(names: list[str | None], rest: list[int]) -> list[int]:
    """The words after the options (those starting with '-', up to a '--')."""
    for pos, k in enumerate(rest):
        text = names[k]
        if text == "--":
            return rest[pos + 1:]
        if text is None or not text.startswith("-") or text == "-":
            return rest[pos:]
    return []


def _shell_code(words: list[_Word], names: list[str | None], rest: list[int]) -> list[int]:
    """A shell given -c (alone or among other options) runs its first operand as code; an
    operand that is a process substitution (bash <(...)) is code too."""
    dash_c, skip = False, False
    for pos, k in enumerate(rest):
        text = names[k]
        if skip:
            skip = False
            continue
        if text in ("-o", "+o", "-O", "+O"):
            skip = True
            continue
        if text is not None and text.startswith(("-", "+")) and text not in ("-", "--"):
            dash_c = dash_c or (text.startswith("-") and "c" in text[1:])
            continue
        operands = rest[pos + 1:] if text == "--" else rest[pos:]
        first = operands[:1]
        return first if dash_c else [k for k in first if words[k].procsub]
    return []


def _letter_flag(names: list[str], rest: list[int], letters: str) -> list[int]:
    """The code of an interpreter's option such as python -c or perl -e: the rest of the
    option word (python -cCODE), else the next word (python -Ic CODE); --eval/--print too."""
    skip = False
    for pos, k in enumerate(rest):
        text = names[k]
        if skip:
            skip = False
            continue
        if text in ("--eval", "--print"):
            return rest[pos + 1:pos + 2]
        if not text.startswith("-") or text in ("-", "--", "-m"):
            return []
        at = next((i for i, c in enumerate(text[1:], 1) if c in letters), None)
        if at is not None:
            return rest[pos + 1:pos + 2] if at == len(text) - 1 else [k]
        skip = text in ("-W", "-X", "-I", "-M")
    return []


def _program(names: list[str | None], rest: list[int], valued: set[str],
             file_flag: str) -> list[int]:
    """awk and sed: the -e/expression words, or the first operand when none is given."""
    programs: list[int] = []
    skip = False
    for pos, k in enumerate(rest):
        text = names[k]
        if skip:
            skip = False
            if names[rest[pos - 1]] in ("-e", "--expression"):
                programs.append(k)
            continue
        if text == file_flag:
            return programs
        if text is not None and text.startswith("-") and text != "-":
            skip = text in valued
            continue
        return programs or [k]
    return programs


def _ssh(names: list[str | None], rest: list[int]) -> list[int]:
    skip = False
    for pos, k in enumerate(rest):
        text = names[k]
        if skip:
            skip = False
            continue
        if text is not None and text.startswith("-"):
            skip = len(text) == 2 and text[1] in SSH_VALUED
            continue
        return rest[pos + 1:]
    return []


def _builtins(name: str, words: list[_Word], names: list[str | None],
              places: list[list[int]], first: int, mark: Mark) -> None:
    """Builtins that read an argument as arithmetic or as a variable name."""
    args = range(first + 1, len(words))
    if name == "let":
        for k in args:
            mark(places[k], "arith")
    elif name in DECLARES:
        _declare(words, names, places, args, mark)
    elif name in NAME_ARGS:
        for k in args:
            mark(places[k], "name")
    elif name in ("printf", "test", "["):
        for k in args:
            if names[k - 1] == "-v":
                mark(places[k], "name")


def _declare(words: list[_Word], names: list[str | None], places: list[list[int]],
             args: range, mark: Mark) -> None:
    """declare and its kin: with -a, -A, -i or -n every argument is read as names or
    arithmetic; otherwise what stands before an argument's '=' names a variable."""
    options = "".join((names[k] or "")[1:] for k in args
                      if (names[k] or "").startswith(("-", "+")))
    for k in args:
        if any(c in options for c in "aAin"):
            mark(places[k], "name")
        else:
            mark([n for n, after_eq in words[k].places if not after_eq], "name")


def sites(code: str) -> list[Site]:
    """Every placeholder of shell ``code``, where it stands and who reads it.

    >>> [(s.name, s.quoting, s.reads) for s in sites("echo {{ a }} \\"{{ b }}\\" '{{ c }}'")]
    [('a', 'word', ''), ('b', 'dquote', ''), ('c', 'single', '')]
    >>> [(s.quoting, s.reads) for s in sites("# it's {{ a }}\\necho $(( {{ b }} + 1 ))")]
    [('comment', ''), ('arith', 'arith')]
    >>> [s.reads for s in sites("bash -c \\"echo {{ a }}\\"; eval x={{ b }}")]
    ['bash -c', 'eval']
    """
    return _Lexer(code).run()


def reference(site: Site, variable: str) -> str:
    """The text that stands for the value of ``site`` in the rewritten code.

    >>> reference(Site(0, 0, "v", "single"), "jp_p_v")
    '\\'"${jp_p_v}"\\''
    """
    ref = "${" + variable + "}"
    forms = {DQUOTE: ref, ARITH: ref, SINGLE: f"'\"{ref}\"'", ANSI: f"'\"{ref}\"$'"}
    return forms.get(site.quoting, f'"{ref}"')  # words, ${...} words, and refused places


def rewrite(code: str, found: list[Site], variable: Callable[[str], str]) -> str:
    """``code`` with each placeholder replaced by a reference to its variable (comments keep
    their text).

    >>> code = "echo {{ a }} '<{{ a }}>' # {{ a }}"
    >>> rewrite(code, sites(code), lambda n: "jp_p_" + n)
    'echo "${jp_p_a}" \\'<\\'"${jp_p_a}"\\'>\\' # {{ a }}'
    """
    out, pos = [], 0
    for site in found:
        out.append(code[pos:site.start])
        out.append(code[site.start:site.end] if site.quoting == COMMENT
                   else reference(site, variable(site.name)))
        pos = site.end
    out.append(code[pos:])
    return "".join(out)


REFUSED = {
    QHEREDOC: "nothing expands inside a quoted here-document (<<'EOF'): use an unquoted one "
              "(<<EOF) to place a value there",
    ESCAPED: "a backslash before '{{' makes it literal text; remove the backslash, or write "
             "the braces differently if you meant them literally",
    UNSURE: "the quotes or brackets of this shell code do not balance, so where this value "
            "would stand cannot be told; fix the quoting (bash would reject it too)",
}


def site_problem(site: Site) -> str | None:
    """Why a placeholder cannot stand where it does, whatever its values."""
    if site.quoting in REFUSED:
        return REFUSED[site.quoting]
    if site.quoting == NAME and site.reads != "name":
        return "a value cannot name a variable or a here-document delimiter here"
    return None


def value_problem(site: Site, value: str) -> str | None:
    """Why ``value`` may not stand at ``site`` (None when it may).

    >>> value_problem(Site(0, 0, "v", "word"), "$(rm -rf ~)") is None
    True
    >>> value_problem(Site(0, 0, "v", "arith", "arith"), "a[$(id)]")
    "bash evaluates the value as arithmetic here, and 'a[$(id)]' is not an integer"
    """
    if site.reads == "arith" or site.quoting == ARITH:
        ok, why = INTEGER, "bash evaluates the value as arithmetic here, and {} is not an integer"
    elif site.reads == "name":
        ok, why = IDENTIFIER, "the value names a variable here, and {} is not a variable name"
    elif site.reads and site.reads.split()[0] not in SHELL_READERS:
        ok, why = NUMBER, (f"the value stands inside code that {site.reads} parses, where "
                           "anything but a number can be code ({} is not); pass it as an "
                           f"argument, or read the environment variable jp_p_{site.name}")
    elif site.reads or site.quoting in (SINGLE, ANSI):
        where = f"code that {site.reads} parses again" if site.reads else (
            "$'...' quotes" if site.quoting == ANSI else
            "single quotes, whose text is often code for another program")
        ok, why = INERT, (f"the value stands inside {where}, and {{}} holds characters other "
                          "than letters, digits and _@%+=:,./- that could change how it reads")
    else:
        return None
    return None if ok.fullmatch(value) else why.format(repr(value))


def command_code(command: str | tuple[str, ...]) -> str:
    """The code a job runs: shell code with each placeholder replaced by a reference to its
    variable, or an argv list as quoted words.

    >>> print(command_code(("python", "t.py", "--lr", "{{ lr }}", "a b")))
    python t.py --lr "${jp_p_lr}" 'a b'
    >>> print(command_code("echo '{{ x }}' >out_{{ run_id }}"))
    echo ''"${jp_p_x}"'' >out_"${RUN_ID}"
    """
    if isinstance(command, str):
        return rewrite(command, sites(command), variable)
    return " ".join(word_ref(parse_text(arg)[0]) for arg in command)


def used_names(command: str | tuple[str, ...]) -> list[str]:
    """Names of the placeholders a command refers to (comments aside), sorted.

    >>> used_names("echo {{ b }} {{ a }} # {{ c }}"), used_names(["{{ x }}", "y"])
    (['a', 'b'], ['x'])
    """
    if isinstance(command, str):
        return sorted({s.name for s in sites(command) if s.quoting != COMMENT})
    return sorted({p.name for arg in command for p in parse_text(arg)[0]
                   if isinstance(p, Param)})


# What a run id looks like: submit_all.sh and launch_all.sh accept [A-Za-z0-9._-]+ only.
RUN_ID_SAMPLE = "20261201T000000Z"


def check_code(code: str, values: Callable[[str], list[str]]) -> list[tuple[int, str]]:
    """(offset, message) for each placeholder of ``code`` that cannot stand where it does,
    or that one of its ``values`` (every value it takes, known at build time) may not.

    >>> found = check_code("echo $(( {{ n }} * 2 )) '{{ s }}'", {"n": ["1", "x"], "s": ["a"]}.get)
    >>> [(offset, message[:50]) for offset, message in found]
    [(9, "'{{ n }}': bash evaluates the value as arithmetic ")]
    """
    out = []
    for site in sites(code):
        if site.quoting == COMMENT:
            continue
        label = f"'{{{{ {site.name} }}}}'"
        problem = site_problem(site)
        if problem:
            out.append((site.start, f"{label}: {problem}"))
            continue
        taken = values(site.name) or []
        for n, value in enumerate(taken):
            problem = value_problem(site, value)
            if problem:
                where = f" (value {n + 1} of {len(taken)})" if len(taken) > 1 or \
                    site.name != "run_id" else ""
                out.append((site.start, f"{label}: {problem}{where}"))
                break
    return out
