"""Recognise func_vqa questions: which program a question asks, with which arguments, and why.

Three layers, tried in order:

a. **exact**: the question, with its vocabulary terms replaced by their kinds, equals a
   template line of a program (base wording or paraphrase) with its ``${slots}`` replaced
   the same way. Term renderings do not matter here: "tubes/lines", "tube/line" and
   "tubesandlines" are all one category; "abnormality" and "abnormalities" one word; "rib
   fractures" and "alveolar haemorrhage" are the findings "rib fracture", "alveolar hemorrhage";
   "PICC line" and "cardiomegaly" are "picc" and "enlarged cardiac silhouette" (``_NAME_EXTRA``).
   A wording that two programs share (an author's program worded like a bundled one) is
   **ambiguous**.
b. **parser**: for wordings never seen, the terms found decide. Every program line is read
   by the same feature reader as a question, so the programs' own templates say what each
   program looks like (no per-program rules):

   * hard: how many objects, attributes, categories, view positions, genders and ratios the
     text names (a template's fixed words such as "cardiac silhouette" or "male or female"
     count, and their values must be the question's), and whether it speaks of abnormality;
   * then, narrowing the programs that remain: the question form (yes/no, list, or a choice
     "which …, X or Y?"), the connective between the two terms of a pair (both/and, either/or,
     only/but not), whether it asks for anatomical locations, and the topic words
     (view, gender/sex, width).

   Two programs that still fit equally make the question **ambiguous** (refused, not guessed).

   Decision rules: the form comes from the leading auxiliary or wh-word ("can you find any …"
   asks whether; "can you list / identify all …" asks for a list; a fragment without either may
   be yes/no or list). Connectives: union markers ("either", "or", "at least one of", "any of",
   "…, or both") outrank a plain "and"; intersection markers ("both", "common", "shared", "as
   well as") give "and"; "but not", "excluding", "without", "free of", "only in" the
   difference; union and intersection at once leave two readings. Rewrites (``_REWRITES``)
   bring wordings to these words before the terms are read.
c. **unknown**: nothing fits, or a word looks like a vocabulary term that is not one (a
   misspelling, "left elbow"), or the question is negated ("free of …", "ruled out"), qualifies
   a finding or place ("large", "new", "malpositioned", "outside the …", "above the …",
   "at the … base"), counts ("how many", "only one of", "at least two", "several"), says
   "all" or "every" in a yes/no question ("are all abnormalities in the left lung?"; "at all"
   is not that), compares a size the other way ("less than half"), or holds a pair word
   ("either", "both", "but", …) with no two terms to join. The answer names the closest
   template line and any misspelt term. A text over ``MAX_QUESTION_LENGTH`` characters is refused unread, and
   errors quote a long question's start only.

Example:
    >>> from cxrvqa.programs import bundled_programs
    >>> found = Recogniser(bundled_programs()).recognise("does the cxr show any pneumothorax?")
    >>> found.program, found.arguments, found.layer
    ('program_22', {'attribute': {'0': 'pneumothorax'}}, 'parser')
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache

from cxrvqa.lang.nodes import Program
from cxrvqa.lang.templates import SLOT, argument_key, param_kind, slot_order
from cxrvqa.vocab import CATEGORIES, CATEGORY_WORDS, VQA_ATTRIBUTES, VQA_OBJECTS

__all__ = ["Recognition", "Recogniser"]

PARAM_KINDS = ("object", "attribute", "category", "viewpos", "gender")
_COUNTED = (*PARAM_KINDS, "ratio")  # kinds whose number of terms must fit exactly
_FLAGS = ("abnormal", "location", "topic")  # words that say what is asked, without a value

_MAX_CACHED = 100_000
# No template filled in is near this long; a longer text is refused before it is read, as the
# closest-template search costs time in its length (a 500 KB string took half a minute).
MAX_QUESTION_LENGTH = 1000
_SHOWN = 120  # characters of a refused question quoted in its error
_TOKEN = re.compile(r"[a-z0-9]+|,")
_CLAUSE_MARKS = str.maketrans(":;\u2013\u2014", ",,,,")  # a colon or dash sets off a clause like a comma

# How category, view, gender, ratio and flag words read in questions, beyond the vocabulary.
_CATEGORY_EXTRA: dict[str, tuple[str, ...]] = {
    "anatomicalfinding": ("anatomical finding", "anatomic finding", "anatomic findings"),
    "technicalassessment": ("technical assessment",),
    "disease": ("disease",),
    "device": ("device",),
    "tubesandlines": ("tube/line", "tubes and lines", "lines and tubes", "tubes or lines",
                      "tube or line", "lines/tubes", "line/tube", "tubes/line", "tubes and/or lines"),
}
# Common clinical names of findings and places, each for exactly one vocabulary name (a name
# standing for several, such as "effusion" or "nodule", is left out and stays refused).
_NAME_EXTRA: dict[str, dict[str, tuple[str, ...]]] = {
    "attribute": {
        "picc": ("picc line", "picc lines"),
        "endotracheal tube": ("ett", "et tube"),
        "enteric tube": ("ng tube", "nasogastric tube", "og tube", "orogastric tube",
                         "feeding tube"),
        "tracheostomy tube": ("tracheostomy",),
        "ij line": ("internal jugular line", "internal jugular catheter"),
        "intra-aortic balloon pump": ("iabp",),
        "cardiac pacer and wires": ("pacemaker", "pacer"),
        "enlarged cardiac silhouette": ("cardiomegaly",),
        "copd/emphysema": ("copd", "emphysema"),
        "fluid overload/heart failure": ("heart failure", "chf", "fluid overload"),
        "pulmonary edema/hazy opacity": ("pulmonary edema",),
        "subcutaneous air": ("subcutaneous emphysema",),
    },
    "object": {
        "svc": ("superior vena cava",),
        "left hemidiaphragm": ("left hemi-diaphragm",),
        "right hemidiaphragm": ("right hemi-diaphragm",),
    },
}
_OTHER_TERMS: dict[str, dict[str, tuple[str, ...]]] = {
    "viewpos": {"AP": ("ap", "anteroposterior", "antero-posterior", "a-p"),
                "PA": ("pa", "posteroanterior", "postero-anterior", "p-a")},
    "gender": {"M": ("male", "man", "men"), "F": ("female", "woman", "women")},
    "ratio": {"1/2": ("1/2", "half", "one half", "one-half", "50%", "50 %", "0.5", "0.50", ".5"),
              "1/3": ("1/3", "third", "one third", "one-third", "a third", "33%", "33 %",
                      "0.33", "0.333", ".33")},
    # The nouns name findings ("which abnormalities …" asks for them); the adjectives describe a
    # place ("which is abnormal: X or Y?" asks to choose one).
    "abnormal": {"abnormality": ("abnormality", "abnormalities", "abnormals", "abnormal finding",
                                 "abnormal findings", "anomaly", "anomalies", "pathology",
                                 "pathologies", "pathological finding", "pathological findings"),
                 "abnormal": ("abnormal", "abnormally", "wrong")},
    "location": {"location": ("anatomical location", "anatomical locations", "location",
                              "locations", "anatomical region", "anatomical regions", "region",
                              "regions", "anatomical site", "anatomical sites", "site", "sites",
                              "anatomical area", "anatomical areas", "area", "areas",
                              "anatomical structure", "anatomical structures", "structure",
                              "structures", "anatomical part", "anatomical parts", "part",
                              "parts", "place", "places", "anatomy"),
                 "where": ("where", "wherever")},  # a location asked with a question word
    "topic": {"view": ("view", "views", "projection", "projections", "view position",
                       "position", "orientation", "viewpoint"),
              "gender": ("gender", "sex", "genders"),
              "size": ("width", "wide", "wider", "widths", "broader", "breadth", "ratio")},
}

# British spellings of vocabulary words, read as the vocabulary spells them.
_SPELLINGS: dict[str, str] = {"haemorrhage": "hemorrhage", "oedema": "edema", "goitre": "goiter"}

# Wordings that say the same as a shorter one, rewritten before terms are read (templates and
# questions alike, so exact matching is unaffected): a connective's many spellings become the
# one word the rules below know, and size wordings name the widths they compare.
_REWRITES: dict[tuple[str, ...], tuple[str, ...]] = {
    ("at", "least", "one", "of"): ("either",),  # "at least one of X and Y": X or Y (union)
    ("any", "of"): ("either",),
    ("one", "or", "both", "of"): ("either",),
    ("or", "both"): ("or",),  # "X, Y, or both": the union, not the intersection
    ("and", "or"): ("or",),
    ("as", "well", "as"): ("and", "both"),
    ("in", "common"): ("common",),
    ("free", "of"): ("not",),  # "free of X": X absent
    ("cardiothoracic", "ratio"): ("cardiac", "silhouette", "width", "to", "thorax", "width"),
    ("cardio", "thoracic", "ratio"): ("cardiac", "silhouette", "width", "to", "thorax", "width"),
    ("heart",): ("cardiac", "silhouette"),
    ("cardiac", "width"): ("cardiac", "silhouette", "width"),
    ("upper", "mediastinal"): ("upper", "mediastinum"),
    ("superior", "mediastinum"): ("upper", "mediastinum"),
    ("superior", "mediastinal", "width"): ("upper", "mediastinum", "width"),
    ("mediastinal", "width"): ("upper", "mediastinum", "width"),  # measured at the upper one
    ("yes", "or", "no"): ("yes",),  # "answer yes or no: …" joins no terms
}
_REWRITE_TRIE: dict[str, list[tuple[tuple[str, ...], tuple[str, ...]]]] = {}
for _words, _instead in sorted(_REWRITES.items(), key=lambda entry: -len(entry[0])):
    assert _instead[:len(_words)] != _words  # a rewrite must not rewrite itself again
    _REWRITE_TRIE.setdefault(_words[0], []).append((_words, _instead))
# Pair connectives: which reading each asks for.
_UNION = frozenset("either or whichever".split())
_INTERSECTION = frozenset("both common shared share shares intersection mutual".split())

# Words that only make sense joining two terms; a question with one of them but no pair is refused.
_PAIR_WORDS = ("either", "both", "or", "neither", "but", "except", "excluding", "only", "common")

_YES_NO = frozenset("is are does do did can could was were has have will would should may might "
                    "any anything whether".split())
_WH = frozenset("what which where list enumerate itemise itemize name identify show give provide "
                "find report specify mention describe".split())
_BOTH = frozenset("both common shared share shares each simultaneously together overlap "
                  "overlapping intersection mutual".split())
_FORM_WORDS = _YES_NO | _WH
_CHOICE_AFTER_OF = frozenset("two these those following both".split())
_NOT = frozenset("not excluding exclude except without absent minus unlike lacking sparing "
                 "spared rather apart besides".split())
_OR = frozenset("or either whichever".split())
_AND = frozenset("and both common shared each plus well together".split())
_NEGATED = frozenset("no not without absent absence free normal lack lacks lacking neither nor "
                     "none negative excluding except minus unlike sparing spared "
                     # a finding asked about as gone or doubted: "is pneumonia ruled out?"
                     "ruled excluded resolved removed unlikely missing gone cleared disappeared "
                     "doubtful against "
                     # a size compared the other way round is the complement of programs 47/48
                     "less smaller narrower under below fewer lower".split())
# Words that ask about more than a finding's presence in a named region, which no program
# answers: its size or severity ("is there a large pleural effusion?" is not "is there pleural
# effusion?"), its change since an earlier study, a device's position, or a place near, outside
# or within part of the region named ("outside the left lung", "at the left lung base").
# Refused unless a template line uses the word.
_QUALIFIERS = frozenset("""
    small large big tiny massive huge moderate moderately mild mildly severe severely minimal
    trace slight slightly significant extensive marked subtle bilateral unilateral
    new newly old worsening worsened worse improving improved improvement increasing decreasing
    decreased progressing progressed progression stable unchanged persistent interval chronic
    acute history previous prior earlier resolving before after
    malpositioned misplaced positioned placement tip terminates good appropriate appropriately
    adequate adequately proper properly satisfactory optimal suboptimal
    outside near nearby adjacent behind beside around overlying underlying surrounding
    beyond other elsewhere periphery peripheral apex apices base bases basal basilar sided lobe
    lobes lingula medial lateral anterior posterior central
    main primary most mostly predominantly predominant dominant exclusively solely prominent
    pronounced better
    """.split())
# Words that place a finding beside a region when a region follows ("above the left
# hemidiaphragm") but compare a size otherwise ("above 0.33 of the chest width"). Not "between":
# "between the trachea and the svc, which …" chooses between two regions.
_RELATIVE = frozenset("above over".split())
_PREPOSITIONS = frozenset("in of at on within from for regarding about involving".split())
# Words that may stand beside terms without changing what is asked (besides template words).
_FILLER = frozenset("""
    a an the this that these those it its there here me you your we our please kindly
    and or of in on at to for from by with within into onto about regarding concerning per as
    is are be been being was were does do did can could will would should may might must has have
    any anything all every each some only both either also just currently still
    chest x ray xray cxr radiograph radiographs radiography radiographic film films image images
    imaging picture scan study studies exam examination patient patients s person subject
    finding findings sign signs evidence visible seen see shown present presence appear appears
    noted detected identified observed found seen located related relevant show shows showing
    displayed depicted demonstrated indicated visualized identifiable detectable observable
    list enumerate itemise itemize name identify give provide report specify mention describe tell
    state
    what which where whether if how one two following given current same provided above
    wider than width of thorax thoracic more greater larger exceed exceeds half third
    """.split())


@dataclass(frozen=True, slots=True, eq=False)  # compared by identity: one instance per phrase
class _Term:
    kind: str
    value: str | None  # None: a template's ${slot}
    slot: str | None = None
    mark: str = field(init=False)  # how the term reads in a skeleton

    def __post_init__(self) -> None:
        mark = f"${{{self.kind}}}" if self.kind in _COUNTED else f"${{{self.kind}:{self.value}}}"
        object.__setattr__(self, "mark", mark)


_Item = str | _Term


@dataclass(frozen=True)
class Recognition:
    """What a question asks: its program and arguments, the layer that decided, and why."""

    question: str
    program: str | None
    arguments: dict[str, dict[str, str]] = field(default_factory=dict)
    layer: str = "unknown"  # exact | parser | ambiguous | unknown
    reason: str = ""
    candidates: tuple[str, ...] = ()
    closest: str | None = None  # "program_N: template line" for an unknown question
    did_you_mean: tuple[str, ...] = ()
    # The rule that refused a question whose terms a program would take ("negated questions
    # are not asked"): said in the error, else its closest template reads like the question.
    rule: str | None = None

    @property
    def ok(self) -> bool:
        return self.program is not None

    def error(self) -> str:
        """The one-line refusal for an unknown or ambiguous question."""
        question = repr(self.question[:_SHOWN]) + ("…" if len(self.question) > _SHOWN else "")
        if self.layer == "ambiguous":
            return (f"ambiguous question {question}, could be "
                    f"{' or '.join(self.candidates)} ({self.reason})")
        text = f"unknown question {question}"
        if len(self.question) > MAX_QUESTION_LENGTH:
            return f"{text} ({len(self.question)} characters; at most {MAX_QUESTION_LENGTH})"
        if self.rule:
            text += f" ({self.rule})"
        if self.did_you_mean:
            text += f"; did you mean {' / '.join(map(repr, self.did_you_mean))}?"
        if self.closest:
            text += f"; closest template: {self.closest}"
        return text

    def render(self) -> str:
        """Lines for ``cxrvqa match``."""
        if not self.ok:
            return self.error()
        args = ", ".join(f"{kind}[{key}]={value!r}" for kind, values in self.arguments.items()
                         for key, value in values.items())
        return f"{self.program}({args})\nlayer: {self.layer}: {self.reason}"


@dataclass(frozen=True)
class _Features:
    counts: tuple[int, ...]  # per _COUNTED kind
    abnormal: bool
    form: str  # yn | list | choice | fragment (no question word: yn or list)
    conn: str | None  # and | and? (a plain "and" in a list question) | or | not | ? (both
    # union and intersection said) | None (no pair)
    location: bool
    topics: frozenset[str]
    negated: bool
    swap: bool = False  # "excluding the Y, … the X": the pair's terms in reverse order
    loose: str | None = None  # a pair connective in a question without a pair: unaccounted for


@dataclass(frozen=True)
class _Line:
    program: str
    number: int
    text: str
    terms: tuple[_Term, ...]  # every term and slot, in order
    fixed: tuple[tuple[str, str], ...]  # (kind, value) of the counted terms that are not slots
    features: _Features
    has_params: bool


class Recogniser:
    """Recognises questions for a set of programs (see the module docstring for the layers)."""

    def __init__(self, programs: Mapping[str, Program]) -> None:
        self.programs = programs
        self._trie = _trie(_term_table())
        vocabulary_words = {w for words, term in _term_table().items()
                            if term.kind in ("object", "attribute", "category") for w in words}
        self.lines = [self._line(program, number, template.text)
                      for program in programs.values()
                      for number, template in enumerate(program.templates)]
        literal = {item for line in self.lines for item in self._items(line.text, True)
                   if isinstance(item, str)}
        self._known = _FILLER | literal
        self._qualifiers = _QUALIFIERS - literal
        self._relative = _RELATIVE - literal
        self._suspicious = frozenset(w for w in vocabulary_words if w not in self._known)
        self._phrases = sorted({" ".join(words) for entries in self._trie.values()
                                for words, _ in entries})
        self._display = {" ".join(_TOKEN.findall(name)): name
                         for name in (*VQA_OBJECTS, *VQA_ATTRIBUTES, *CATEGORY_WORDS.values())}
        self._exact: dict[str, list[_Line]] = {}
        self._by_counts: dict[tuple[tuple[int, ...], bool], list[_Line]] = {}
        for line in self.lines:
            self._exact.setdefault(_skeleton(self._items(line.text, True)), []).append(line)
            self._by_counts.setdefault((line.features.counts, line.features.abnormal),
                                       []).append(line)
        self._cache: dict[str, Recognition] = {}

    # --- reading text ------------------------------------------------------------------

    def _items(self, text: str, template: bool = False) -> list[_Item]:
        """Words and commas of a text, its vocabulary terms (and ``${slots}``) as terms."""
        items: list[_Item] = []
        text = text.lower().translate(_CLAUSE_MARKS)
        pieces = SLOT.split(text) if template else [text]
        for number, piece in enumerate(pieces):
            if number % 2:
                items.append(_Term(param_kind(piece), None, piece))
            else:
                items.extend(self._terms(_TOKEN.findall(piece)))
        return items

    def _terms(self, tokens: Sequence[str]) -> list[_Item]:
        """Longest vocabulary match first, left to right; a wording outside a term is rewritten
        (``_REWRITES``) before it is read."""
        items: list[_Item] = []
        tokens = list(tokens)
        if not _SPELLINGS.keys().isdisjoint(tokens):
            tokens = [_SPELLINGS.get(token, token) for token in tokens]
        i = 0
        while i < len(tokens):
            for words, term in self._trie.get(tokens[i], ()):
                if tuple(tokens[i:i + len(words)]) == words:
                    items.append(term)
                    i += len(words)
                    break
            else:
                for words, instead in _REWRITE_TRIE.get(tokens[i], ()):
                    if tuple(tokens[i:i + len(words)]) == words:
                        tokens[i:i + len(words)] = instead
                        break
                else:
                    items.append(tokens[i])
                    i += 1
        return items

    def _line(self, program: Program, number: int, text: str) -> _Line:
        items = self._items(text, True)
        terms = tuple(item for item in items if isinstance(item, _Term))
        return _Line(program.name, number, text, terms,
                     tuple((t.kind, t.value) for t in terms
                           if t.kind in _COUNTED and t.slot is None and t.value), _features(items),
                     any(t.slot for t in terms))

    # --- recognising -------------------------------------------------------------------

    def recognise(self, question: str) -> Recognition:
        """The program and arguments of one question (cached by text)."""
        if len(question) > MAX_QUESTION_LENGTH:
            return Recognition(question, None, reason=f"longer than {MAX_QUESTION_LENGTH} characters")
        found = self._cache.get(question)
        if found is None:
            if len(self._cache) >= _MAX_CACHED:
                self._cache.clear()  # a safety net: real pipelines ask few distinct questions
            found = self._cache[question] = self._recognise(question)
        return found

    def _recognise(self, question: str) -> Recognition:
        items = self._items(question)
        bound = [(line, arguments) for line in self._exact.get(_skeleton(items), ())
                 if (arguments := _bind(line, items)) is not None]
        programs = tuple(dict.fromkeys(line.program for line, _ in bound))
        if len(programs) > 1:  # e.g. an author's program worded like a bundled one
            return Recognition(question, None, layer="ambiguous", candidates=programs,
                               reason="the same template wording")
        if bound:
            line, arguments = bound[0]
            return Recognition(question, line.program, arguments, "exact",
                               f"template line {line.number + 1} of {line.program}: "
                               f"{line.text!r}")
        return self._parse(question, items)

    def _parse(self, question: str, items: list[_Item]) -> Recognition:
        strange = self._strange_words(items)
        if strange:
            return self._unknown(question, items, f"unknown term(s) {', '.join(strange)}", strange)
        if _counts_things(items):
            return self._unknown(question, items, "counting questions are not asked", rule=True)
        features = _features(items)
        if features.negated:
            return self._unknown(question, items, "negated questions are not asked", rule=True)
        qualified = [w for w in items if w in self._qualifiers] or _relative_places(items, self._relative)
        if qualified:
            return self._unknown(question, items, f"{qualified[0]!r} asks about more than a "
                                 f"finding's presence in a named region", rule=True)
        if features.loose:
            return self._unknown(question, items, f"{features.loose!r} joins no two terms", rule=True)
        if features.form == "yn" and _says_all(items):
            # "are all abnormalities in the left lung?" asks whether every one is: no program does
            return self._unknown(question, items, "'all' or 'every' in a yes/no question", rule=True)
        lines = [line for line in self._by_counts.get((features.counts, features.abnormal), ())
                 if _fixed_fit(line, items)]
        why = [f"terms {_describe(features)}"]
        for narrow in (_by_form, _by_location, _by_conn, _by_topic):
            lines, reason = narrow(lines, features)
            if reason:
                why.append(reason)
        lines = [line for line in lines if _has_evidence(line, features)]
        programs = tuple(dict.fromkeys(line.program for line in lines))
        if len(programs) > 1:
            return Recognition(question, None, layer="ambiguous", reason="; ".join(why),
                               candidates=programs)
        if not programs:
            return self._unknown(question, items, "no program fits " + "; ".join(why))
        arguments = _bind_in_order(self.programs[programs[0]], lines[0], items, features.swap)
        return Recognition(question, programs[0], arguments, "parser", "; ".join(why))

    def _strange_words(self, items: list[_Item]) -> list[str]:
        """Words that look like (parts of) vocabulary terms but are none, or unknown places."""
        strange = []
        for at, item in enumerate(items):
            if item.__class__ is not str or item in self._known:
                continue
            if item in self._suspicious:
                strange.append(item)
            elif at >= 2 and items[at - 1] == "the" and items[at - 2] in _PREPOSITIONS and item != ",":
                # "in the elbow?": an unknown word where a place's name ends, not "in the given image".
                after = _after(items, at)
                if after in (",", "or", "and", "but") or after.__class__ is _Term:
                    strange.append(item)
                    continue
            if len(item) > 4 and _close(item, self._vocabulary_words()):
                strange.append(item)
        return list(dict.fromkeys(strange))

    def _vocabulary_words(self) -> tuple[str, ...]:
        return _words_of(tuple(self._display))

    def _unknown(self, question: str, items: list[_Item], reason: str,
                 strange: Iterable[str] = (), rule: bool = False) -> Recognition:
        skeleton = _skeleton(items)
        best = max(self.lines, key=lambda line: difflib.SequenceMatcher(
            None, skeleton, _skeleton(self._items(line.text, True))).ratio())
        return Recognition(question, None, layer="unknown", reason=reason,
                           closest=f"{best.program}: {best.text!r}",
                           did_you_mean=self._guesses(items, set(strange)),
                           rule=reason if rule else None)

    def _guesses(self, items: list[_Item], strange: set[str]) -> tuple[str, ...]:
        """Vocabulary names close to each run of unknown words that holds a strange word."""
        guesses: list[str] = []
        run: list[str] = []
        for item in [*items, ","]:
            if isinstance(item, str) and item != "," and (item in strange or item not in self._known):
                run.append(item)
                continue
            if strange & set(run):
                guesses += self._guess(run)
            run = []
        return tuple(dict.fromkeys(guesses))

    def _guess(self, run: list[str]) -> list[str]:
        names = list(self._display)
        for size in range(len(run), 0, -1):  # the longest run of words that resembles a name
            for start in range(len(run) - size + 1):
                text = " ".join(run[start:start + size])
                close = difflib.get_close_matches(text, names, n=2, cutoff=0.75)
                if close:
                    return [self._display[name] for name in close]
        holding = [name for name in names if set(run) & set(name.split())]
        return [self._display[name] for name in holding[:3]]


# --- the term table -------------------------------------------------------------------------

@lru_cache(maxsize=1)
def _term_table() -> dict[tuple[str, ...], _Term]:
    table: dict[tuple[str, ...], _Term] = {}

    def add(text: str, kind: str, value: str) -> None:
        table.setdefault(tuple(_TOKEN.findall(text.lower())), _Term(kind, value))

    for name in VQA_OBJECTS:
        add(name, "object", name)
    for name in VQA_ATTRIBUTES:
        add(name, "attribute", name)
    for name in VQA_ATTRIBUTES:  # after every name, so that no other form hides one
        if other := _other_number(name):
            add(other, "attribute", name)
    for kind, names in _NAME_EXTRA.items():
        for name, texts in names.items():
            for text in texts:
                add(text, kind, name)
    for category in CATEGORIES:
        for text in (category, CATEGORY_WORDS[category], *_CATEGORY_EXTRA[category]):
            add(text, "category", category)
    for kind, values in _OTHER_TERMS.items():
        for value, texts in values.items():
            for text in texts:
                add(text, kind, value)
    return table


def _other_number(name: str) -> str | None:
    """The plural of a finding's name ("rib fractures", "lung opacities"), or the singular of a
    plural one ("cabg graft"): "are there pleural effusions?" asks what "is there pleural
    effusion?" does. None for names whose last word has no plain other number."""
    if "/" in name or "(" in name or not name[-1].isalpha():
        return None
    if name.endswith(("is", "ss", "us", "ax", "um", "ed", "ing", "air")):  # scoliosis, pneumothorax,
        return None  # pneumomediastinum, rotated, costophrenic angle blunting, subcutaneous air
    if name.endswith("s"):
        return name[:-1]
    if name.endswith("y") and name[-2] not in "aeiou":
        return name[:-1] + "ies"
    return name + "s"


def _trie(table: Mapping[tuple[str, ...], _Term]) -> dict[str, list[tuple[tuple[str, ...], _Term]]]:
    """First word -> (words, term), longest first."""
    trie: dict[str, list[tuple[tuple[str, ...], _Term]]] = {}
    for words, term in table.items():
        trie.setdefault(words[0], []).append((words, term))
    for entries in trie.values():
        entries.sort(key=lambda entry: -len(entry[0]))
    return trie


@lru_cache(maxsize=4)
def _words_of(phrases: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(sorted({w for p in phrases for w in p.split() if len(w) > 3}))


@lru_cache(maxsize=65536)
def _close(word: str, words: tuple[str, ...]) -> bool:
    # A long word one or two letters off a vocabulary word is a misspelling, not a new word.
    return bool(difflib.get_close_matches(word, words, n=1, cutoff=0.85))


# --- features -------------------------------------------------------------------------------

def _skeleton(items: Sequence[_Item]) -> str:
    return " ".join([i if i.__class__ is str else i.mark for i in items  # type: ignore[union-attr]
                     if i != ","])


def _features(items: Sequence[_Item]) -> _Features:
    places: dict[str, list[int]] = {}
    words: set[str] = set()
    for number, item in enumerate(items):
        if isinstance(item, str):
            words.add(item)
        else:
            places.setdefault(item.kind, []).append(number)
    counts = tuple(len(places.get(kind, ())) for kind in _COUNTED)
    pair = next(((p[0], p[1]) for kind in PARAM_KINDS
                 if len(p := places.get(kind, [])) >= 2), None)
    conn, swap = _conn(items, pair, words) if pair else (None, False)
    form = _form(items, pair, conn, words)
    if form == "choice":
        conn = "or"
    elif conn == "and" and form == "list" and not words & _BOTH:
        # "list the … in the X and the Y" may mean either; "both", "common", … say which.
        conn = "and?"
    if "yes" in words:
        words.discard("no")  # "answer yes or no: …" is not a negation
    negated = bool(words & _NEGATED) and conn != "not"  # "but not" names the pair's exclusion
    topics = frozenset(items[n].value or "" for n in places.get("topic", ()))  # type: ignore[union-attr]
    loose = None if pair else next((w for w in _PAIR_WORDS if w in words), None)
    return _Features(counts, "abnormal" in places, form, conn, "location" in places, topics,
                     negated, swap, loose)


def _between_has(items: Sequence[_Item], pair: tuple[int, int] | None, words: frozenset[str]) -> bool:
    return pair is not None and any(i in words for i in items[pair[0] + 1:pair[1]])


def _conn(items: Sequence[_Item], pair: tuple[int, int], words: set[str]) -> tuple[str | None, bool]:
    """The connective between the pair's terms, else the one the whole question implies;
    and whether the excluded term comes first ("excluding the Y, … in the X")."""
    if _between_has(items, pair, _NOT) or any(
            items[at] == "no" and items[at - 1] in ("but", "and") for at in range(*pair)):
        return "not", False  # "… but not Y", "… but no Y"
    if any(i in _NOT for i in items[:pair[0]]):
        return "not", True
    # A union marker anywhere ("either", "at least one of", "…, or both") outranks a plain "and"
    # between the terms; an intersection marker ("both", "common", …) outranks nothing else.
    # Both kinds at once leave two readings: "?" (refused unless one program fits both).
    union = "either" in words or any(i in _OR for i in items[pair[0] + 1:])
    intersection = bool(words & _BOTH)
    if union and intersection:
        return "?", False
    if union:
        return "or", False
    if intersection or _between_has(items, pair, _AND):
        return "and", False
    only = {"only", "exclusively", "exclusive", "solely", "uniquely", "unique"}
    if words & only:  # what is "only in the X" comes first
        return "not", _between_has(items, pair, frozenset(only))
    return None, False


def _form(items: Sequence[_Item], pair: tuple[int, int] | None, conn: str | None,
          words: set[str]) -> str:
    """yn, list or choice ("which …, X or Y?")."""
    at = next((n for n, i in enumerate(items) if i in _FORM_WORDS or _is_where(i)), None)
    first = items[at] if at is not None else None
    if isinstance(first, _Term):
        first = "where"
    if at is not None and first in _YES_NO and items[at + 1:at + 2] == ["you"]:
        first = _after_can_you(items[at + 2:])
    if first in _YES_NO or (first is None and "if" in words):  # "tell me if there is …"
        return "yn"
    if first is None:
        # A fragment ("PA view?", "both X and Y?") may ask whether or ask for a list, unless it
        # asks for places or all; when a program of each form fits, it is refused as ambiguous.
        places = any(isinstance(i, _Term) and i.kind == "location" for i in items)
        if places or words & {"all", "every"}:
            return "list"
        # "pneumonia: the left lung or the right lung?" may also ask to choose one of the two
        return "open" if _offers_two(items, pair, conn, words) else "fragment"
    between = pair is not None and ("between" in items[:pair[0]] or conn == "or")
    if between and first == "which" and pair[1] < at:  # type: ignore[index, operator]
        # "between X and Y, which …?", "X or Y, which …?" (not "which … shared between X and Y")
        return "choice"
    if _offers_two(items, pair, conn, words) and not _asks_for_findings(items):
        return "choice"
    if _which_of(items, pair):
        return "choice"
    return "list"


def _offers_two(items: Sequence[_Item], pair: tuple[int, int] | None, conn: str | None,
                words: set[str]) -> bool:
    """A clause mark just before "X or Y" (not "either"): the pair is offered as the options."""
    return (pair is not None and conn == "or" and "either" not in words
            and "," in items[max(pair[0] - 3, 0):pair[0]])


_SEEK = frozenset("identify find see spot detect notice observe locate discern".split())
_LISTING = frozenset("all every each which what where the".split())
_ASKS = _YES_NO | _WH | _SEEK | {"if"}


def _after_can_you(rest: Sequence[_Item]) -> str:
    """What "can you …" asks: "can you list …" / "can you tell me which …" / "… tell me the X"
    ask for a list; "can you identify any …" / "can you see …" ask whether; "can you identify
    all …" lists."""
    verb = next((i for i in rest if i in _ASKS), None)
    if verb is None and rest[:1] == ["tell"]:
        return "what"  # "can you tell me the patient's sex?" (not "… tell me if …")
    if verb in _SEEK:
        after = rest[rest.index(verb) + 1:rest.index(verb) + 2]
        return "what" if after and after[0] in _LISTING else "is"
    return "what" if verb in _WH else "is"


def _is_where(item: _Item) -> bool:
    return isinstance(item, _Term) and item.value == "where"


def _asks_for_findings(items: Sequence[_Item]) -> bool:
    """"what abnormalities …": the answer is findings, not one of two named places."""
    return any(a in ("what", "which") and isinstance(b, _Term) and b.kind == "abnormal"
               and b.value == "abnormality" for a, b in zip(items, items[1:]))


def _which_of(items: Sequence[_Item], pair: tuple[int, int] | None) -> bool:
    """"which one …", "which of the two …", "which of the X and the Y …" (not "which of the findings")."""
    for at, (word, after) in enumerate(zip(items, items[1:])):
        if word != "which":
            continue
        if after == "one":
            return True
        if after == "of":
            nxt = at + 2 + (items[at + 2:at + 3] == ["the"])
            if nxt < len(items) and (items[nxt] in _CHOICE_AFTER_OF
                                     or (pair is not None and nxt == pair[0])):
                return True
    return False


def _fixed_fit(line: _Line, items: Sequence[_Item]) -> bool:
    if not line.fixed:
        return True
    values = [(i.kind, i.value) for i in items if isinstance(i, _Term) and i.kind in _COUNTED]
    for fixed in line.fixed:
        if fixed not in values:
            return False
        values.remove(fixed)
    return True


def _narrow(lines: list[_Line], keep: Callable[[_Line], bool], reason: str) -> tuple[list[_Line], str]:
    kept = [line for line in lines if keep(line)]
    if kept and len({line.program for line in kept}) < len({line.program for line in lines}):
        return kept, reason
    return lines, ""


def _by_form(lines: list[_Line], f: _Features) -> tuple[list[_Line], str]:
    forms = {"fragment": ("yn", "list"), "open": ("yn", "list", "choice")}.get(f.form, (f.form,))
    kept = [line for line in lines if line.features.form in forms]
    if not kept and f.conn == "or":
        # "Is this an AP or a PA view?" asks to choose; so may "which …, X or Y" (a list).
        other = {"yn": ("choice",), "choice": ("list",), "list": ("choice",),
                 "fragment": ("choice",), "open": ()}[f.form]
        kept = [line for line in lines if line.features.form in other]
    if len({line.program for line in kept}) < len({line.program for line in lines}):
        return kept, f"form {f.form}"
    return lines, ""


def _by_conn(lines: list[_Line], f: _Features) -> tuple[list[_Line], str]:
    if f.conn is None:
        return lines, ""
    allowed = {"and": ("and", "and?"), "and?": ("and", "and?", "or"),
               "?": ("and", "and?", "or")}.get(f.conn, (f.conn,))
    kept = [line for line in lines if line.features.conn in (*allowed, None)]
    if not kept and f.form == "list" and f.counts[2] == 2 and f.conn in ("and", "and?", "or"):
        kept = lines  # listing two categories: "a and b" and "a or b" both mean the union
    if len({line.program for line in kept}) < len({line.program for line in lines}):
        return kept, f"connective {f.conn}"
    return lines, ""


def _by_location(lines: list[_Line], f: _Features) -> tuple[list[_Line], str]:
    if f.location:
        kept = [line for line in lines if line.features.location]
        return kept, ("asks for locations" if len(kept) < len(lines) else "")
    if f.form == "open":
        return lines, ""  # choosing one of two places asks for a location without saying so
    return _narrow(lines, lambda line: not line.features.location, "no location asked")


def _by_topic(lines: list[_Line], f: _Features) -> tuple[list[_Line], str]:
    if not f.topics:
        return lines, ""
    return _narrow(lines, lambda line: bool(line.features.topics & f.topics),
                   f"about {'/'.join(sorted(f.topics))}")


_COUNTING = frozenset({("how", "many"), ("number", "of"), ("only", "one"), ("exactly", "one"),
                       ("just", "one"), ("at", "most"), ("single", "one"), ("one", "but"),
                       # "at least one of" is read as "either" before this; what remains counts
                       ("at", "least"), ("or", "more")})
_COUNTING_FIRST = frozenset(a for a, _ in _COUNTING) | {"more"}
_MANY = frozenset("several multiple many numerous count".split())
_NUMBERS = frozenset("one two three four five".split())
_ALL = frozenset({"all", "every"})


def _counts_things(items: Sequence[_Item]) -> bool:
    """"How many …", "the number of …", "count …", "only one of X and Y" (exactly one, not
    either), "at least two …", "more than one …", "several …", "2 abnormalities": no program
    counts. (Numbers inside a term, such as a size's "0.5", were read with the term.)"""
    for at, item in enumerate(items):
        if item.__class__ is not str:
            continue
        if item in _MANY:
            return True
        if item in _COUNTING_FIRST:
            pair, third = (item, _after(items, at)), _after(items, at, 2)
            if pair == ("at", "least"):  # "at least one abnormality?" asks whether there is any
                if third not in ("one", "1"):
                    return True
            elif pair in _COUNTING or (pair == ("more", "than") and third in _NUMBERS):
                return True
        elif item.isdigit() and isinstance(_after(items, at), _Term):
            return True  # "2 abnormalities", not "1 image"
    return False


def _after(items: Sequence[_Item], at: int, step: int = 1) -> _Item:
    """The item ``step`` places after ``at``; past the end, a clause mark (the question ends)."""
    return items[at + step] if at + step < len(items) else ","


def _relative_places(items: Sequence[_Item], words: frozenset[str]) -> list[str]:
    """The ``words`` (of ``_RELATIVE``) that a region follows, "the" allowed between."""
    found = []
    for at, item in enumerate(items):
        if item in words:
            region = _after(items, at, 2 if _after(items, at) == "the" else 1)
            if region.__class__ is _Term and region.kind == "object":
                found.append(item)
    return found


def _says_all(items: Sequence[_Item]) -> bool:
    """"all" or "every", but not the "at all" of "is there any abnormality at all?"."""
    return any(item in _ALL and not (item == "all" and at and items[at - 1] == "at")
               for at, item in enumerate(items))


def _has_evidence(line: _Line, f: _Features) -> bool:
    """A program without parameters needs its own words in the question, not just nothing."""
    return bool(line.has_params or line.fixed or f.abnormal or (line.features.topics & f.topics))


def _describe(f: _Features) -> str:
    named = [f"{count} {kind}" for kind, count in zip(_COUNTED, f.counts) if count]
    if f.abnormal:
        named.append("abnormality")
    return ", ".join(named) or "none"


# --- arguments ------------------------------------------------------------------------------

def _bind(line: _Line, items: Sequence[_Item]) -> dict[str, dict[str, str]] | None:
    """Arguments of a question whose skeleton is ``line``'s: slot by slot, fixed terms equal."""
    terms = [i for i in items if isinstance(i, _Term)]
    arguments: dict[str, dict[str, str]] = {}
    for want, term in zip(line.terms, terms):
        if want.slot is not None:
            arguments.setdefault(term.kind, {})[argument_key(want.slot)] = term.value or ""
        elif want.value != term.value:
            return None
    return _ordered(arguments)


def _bind_in_order(program: Program, line: _Line, items: Sequence[_Item],
                   swap: bool = False) -> dict[str, dict[str, str]]:
    """Arguments from the question's terms: each kind's params take its free terms in order."""
    free: dict[str, list[str]] = {}
    fixed: list[tuple[str, str | None]] = list(line.fixed)
    for item in items:
        if isinstance(item, _Term) and item.kind in PARAM_KINDS:
            if (item.kind, item.value) in fixed:
                fixed.remove((item.kind, item.value))
            else:
                free.setdefault(item.kind, []).append(item.value or "")
    if swap:
        pair = next(free[kind] for kind in PARAM_KINDS if len(free.get(kind, ())) >= 2)
        pair[0], pair[1] = pair[1], pair[0]
    arguments: dict[str, dict[str, str]] = {}
    for kind, position in _plan(program):
        arguments.setdefault(kind, {})[str(position)] = free[kind][position]
    return arguments


_PLANS: dict[int, tuple[Program, tuple[tuple[str, int], ...]]] = {}


def _plan(program: Program) -> tuple[tuple[str, int], ...]:
    """(kind, position) of each param, kinds in the released order, positions ascending."""
    entry = _PLANS.get(id(program))
    if entry is None or entry[0] is not program:
        plan = tuple(sorted((slot_order(p.name) for p in program.params),
                            key=lambda kp: (PARAM_KINDS.index(kp[0]), kp[1])))
        entry = _PLANS[id(program)] = (program, plan)
    return entry[1]


def _ordered(arguments: dict[str, dict[str, str]]) -> dict[str, dict[str, str]]:
    return {kind: dict(sorted(arguments[kind].items(), key=lambda kv: int(kv[0])))
            for kind in PARAM_KINDS if kind in arguments}
