"""The table of simple fact patterns: one regular expression over one part of a sentence -> one question.

    >>> [p.intent for p in PATTERNS if p.part == "predicate" and p.regex.match("is located in Asia.")]
    ['where']

A pattern reads the predicate after the subject ("is located in ..."), the attribute after a possessive
("Its capital is Paris"), or the sentence's main clause (numbers with units, chemical symbols); see
``facts.sentence_facts``. Its phrasings are the question first, then at least three paraphrases, with slots
``{x}`` (the subject as questions name it), ``{be}``/``{do}``/``{have}`` (agreeing with it), ``{its}`` and
``{word}`` ("the name Mercury", "the word "lion""), plus the pattern's named groups.

Patterns are narrow on purpose (a missed question costs less than a wrong one) and each is limited to the
kinds of subject (person / place / species / thing / ``BODY``) and domains where its question makes sense.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from minillm.data.subject import PLACE, SPECIES, THING, Subject

BODY = "body"  # a pseudo-kind: organs, glands, bones ... ("What does the heart do?")
_BODY_HEADS = {"organ", "gland", "muscle", "bone", "tissue", "cell", "nerve", "vessel", "artery", "vein",
               "membrane", "hormone", "enzyme", "cartilage", "ligament", "tendon", "duct", "lobe", "valve"}

NUM = r"(?:\d[\d,]*(?:\.\d+)?(?:\s+(?:million|billion|thousand|trillion))?)"
ABOUT = (r"(?:(?:about|approximately|around|over|more than|nearly|almost|roughly|some|up to|at least|"
         r"an estimated|estimated at|between|less than|just over|just under)\s+)*")
BE = (r"(?:is|are|was|were)\s+(?:(?:also|now|still|usually|mainly|mostly|primarily|generally|often|"
      r"typically|commonly|currently|largely|\w+ly)\s+)?")
_LENGTH_UNIT = (r"(?:km|kilomet(?:re|er)s?|mi|miles?|m|met(?:re|er)s?|ft|feet|foot|cm|centimet(?:re|er)s?|"
                r"mm|millimet(?:re|er)s?|inches|in|light[- ]years?|ly|AU|au|nautical miles|yards)")
_MEASURE = rf"{NUM}\s*-?\s*{_LENGTH_UNIT}\b\s*(?:\([^)]*\)\s*)?"
_ATTR = (r"(?:(?:mean|average|total|equatorial|estimated|maximum|approximate|current|overall|land|polar|"
         r"main|primary|chief|principal|urban|metropolitan)\s+)*")
_SQUARE = r"(?:km2|km²|mi2|mi²|sq|square|hectares|acres)"
_COLOUR = (r"(?:colou?rless|white|silvery(?:-white)?|grey|gray|yellow|red|blue|green|black|brown|shiny|"
           r"lustrous|transparent|odou?rless|pale|dark|bright|metallic)")
_STANDARD = (r"(?:room temperature|standard temperature and pressure|standard conditions|normal conditions|"
             r"STP)")
_ELEMENT_GROUP = (r"(?:alkali metal|alkaline earth metal|transition metal|post-transition metal|lanthanide|"
                  r"actinide|noble gas|halogen|metalloid|chalcogen|pnictogen|rare-earth element)")
_BODY_PART = (r"(?:body|bodies|head|tail|fur|feathers|plumage|coat|shell|wings|legs|skin|scales|mane|beak|"
              r"bill|neck|ears|eyes|teeth|snout|horns|antlers|markings|stripes|spots|claws|fins)")


@dataclass(frozen=True)
class Pattern:
    kind: str
    intent: str
    part: str  # "predicate" or "attribute" (matched at their start), "sentence" (searched)
    regex: re.Pattern[str]
    phrasings: tuple[str, ...]
    kinds: frozenset[str] | None = None  # subject kinds it applies to; None: all
    domains: frozenset[str] | None = None  # article domains it applies to; None: all

    def applies(self, subject: Subject, domain: str) -> bool:
        if self.domains is not None and domain not in self.domains:
            return False
        if self.kinds is None or subject.kind in self.kinds:
            return True
        body_part = subject.kind == THING and (domain == "anatomy" or subject.head in _BODY_HEADS)
        return BODY in self.kinds and body_part


WHERE = ("Where {be} {x} located?", "Where can {x} be found?", "What is the location of {x}?",
         "Can you tell me where {x} {be}?", "In what part of the world {be} {x}?")
LIVE = ("Where {do} {x} live?", "Where can {x} be found?", "What is the habitat of {x}?",
        "Where in the world {do} {x} live?")
FOUND = ("Where {be} {x} found?", "Where can {x} be found?", "Where does one find {x}?",
         "In what places {be} {x} found?")
MADE_OF = ("What {be} {x} made of?", "What {do} {x} consist of?", "What {be} {x} composed of?",
           "What makes up {x}?")
CONSIST_OF = ("What {do} {x} consist of?", "What {be} {x} made up of?", "What {be} {x} composed of?",
              "What makes up {x}?")
DIVIDED = ("What {be} {x} divided into?", "How {be} {x} divided?", "Into what parts {be} {x} divided?",
           "What are the divisions of {x}?")
INCLUDES = ("What {do} {x} include?", "What {be} included in {x}?", "What are the parts of {x}?",
            "What {do} {x} contain?")
PRODUCED = ("How {be} {x} produced?", "How {be} {x} made?", "How {be} {x} obtained?",
            "What process produces {x}?")
FUNCTION = ("What {do} {x} do?", "What is the function of {x}?", "What {be} {x} for?",
            "What role {do} {x} play?")
USE = ("What {be} {x} used for?", "How {be} {x} used?", "What can {x} be used for?",
       "What {do} people use {x} for?")
DIET = ("What {do} {x} eat?", "What {do} {x} feed on?", "What is the diet of {x}?", "What food {do} {x} eat?")
LOOK = ("What {do} {x} look like?", "How can you recognise {x}?", "What are the distinctive features of {x}?",
        "Describe the appearance of {x}.")
CAUSE = ("What causes {x}?", "What {be} {x} caused by?", "What leads to {x}?", "What gives rise to {x}?")
FORM = ("How {do} {x} form?", "How {be} {x} formed?", "What makes {x} form?", "How {do} {x} come about?")
OCCUR = ("When {do} {x} occur?", "Under what conditions {do} {x} occur?", "When {do} {x} happen?",
         "In what situations {do} {x} occur?")
SYMPTOMS = ("What are the symptoms of {x}?", "What are the signs of {x}?",
            "How can you tell if someone has {x}?", "What symptoms {do} {x} cause?")
TREATMENT = ("How {be} {x} treated?", "What is the treatment for {x}?", "How can {x} be treated?",
             "What can be done about {x}?")
STUDY = ("What {do} {x} study?", "What is {x} the study of?", "What is studied in {x}?",
         "What does the field of {x} study?")
MEASURED = ("How {be} {x} measured?", "How do scientists measure {x}?", "What is used to measure {x}?",
            "How can {x} be measured?")
NAME = ("Where does {word} come from?", "How did {x} get {its} name?", "What is the origin of {word}?",
        "Why {be} {x} called that?")
PART = ("What {be} {x} part of?", "What {be} {x} a part of?", "Of what {be} {x} a part?",
        "What {do} {x} belong to?")
MEMBER = ("What {be} {x} a member of?", "What group {do} {x} belong to?", "Which group {be} {x} part of?",
          "What {do} {x} belong to?")
CAPITAL = ("What is the capital of {x}?", "Which city is the capital of {x}?",
           "Can you name the capital of {x}?", "What city serves as the capital of {x}?")
LARGEST_CITY = ("What is the {largest} city in {x}?", "Which city is the {largest} in {x}?",
                "Can you name the {largest} city in {x}?", "What is {x}'s {largest} city?")
BORDERS = ("What borders {x}?", "What {be} {x} bordered by?", "What are the neighbours of {x}?",
           "Which places border {x}?")
FLOW = ("Where {do} {x} flow?", "What course {do} {x} take?", "Where {do} {x} run?",
        "Through which regions {do} {x} flow?")
RIVER = ("Which river {be} {x} on?", "On which river {be} {x} located?", "What river {be} {x} situated on?",
         "Near which river {be} {x}?")
LANGUAGE = ("What is the official language of {x}?", "What language do people speak in {x}?",
            "Which language is official in {x}?", "What languages are spoken in {x}?")
CONSTELLATION = ("In which constellation {be} {x}?", "Which constellation {be} {x} in?",
                 "Where in the sky {be} {x}?", "In what constellation can {x} be found?")
ORBITS = ("What {do} {x} orbit?", "Around what {do} {x} orbit?", "Which body {do} {x} orbit?",
          "What {be} {x} in orbit around?")
DISTANCE = ("How far {be} {x} from {center}?", "What is the distance between {x} and {center}?",
            "How far away from {center} {be} {x}?", "How distant {be} {x} from {center}?")
LENGTH = ("How long {be} {x}?", "What is the length of {x}?", "Do you know how long {x} {be}?",
          "What is the total length of {x}?")
HEIGHT = ("How tall {be} {x}?", "What is the height of {x}?", "How high {be} {x}?",
          "Do you know how tall {x} {be}?")
ELEVATION = ("What is the elevation of {x}?", "How high {be} {x}?", "At what altitude {be} {x}?",
             "How high above sea level {be} {x}?")
DEPTH = ("How deep {be} {x}?", "What is the depth of {x}?", "Do you know how deep {x} {be}?",
         "How far down {do} {x} go?")
POPULATION = ("What is the population of {x}?", "How many people live in {x}?", "How populous {be} {x}?",
              "What is the number of inhabitants of {x}?")
AREA = ("What is the area of {x}?", "How big {be} {x}?", "How large {be} {x}?",
        "How much land {do} {x} cover?")
DIAMETER = ("What is the diameter of {x}?", "How wide {be} {x}?", "How big {be} {x} across?",
            "How large {be} {x} in diameter?")
MASS = ("What is the mass of {x}?", "How massive {be} {x}?", "How much mass {do} {x} have?",
        "How heavy {be} {x}?")
ORBIT_PERIOD = ("What is the orbital period of {x}?", "How long {do} {x} take to complete one orbit?",
                "How long is one orbit of {x}?", "How much time {do} {x} need for one orbit?")
WEIGHT = ("How much {do} {x} weigh?", "What is the weight of {x}?", "How heavy {be} {x}?",
          "What {do} {x} weigh?")
LIFESPAN = ("How long {do} {x} live?", "What is the lifespan of {x}?", "How many years {do} {x} live?",
            "What is the life expectancy of {x}?")
TEMPERATURE = ("What is the surface temperature of {x}?", "How hot is the surface of {x}?",
               "What temperature is the surface of {x}?", "How warm is the surface of {x}?")
SPEED = ("How fast can {x} {move}?", "What speed can {x} reach?", "How quickly can {x} {move}?",
         "What is the top speed of {x}?")
SYMBOL = ("What is the chemical symbol for {x}?", "What symbol represents {x}?",
          "Which chemical symbol does {x} have?", "What is the symbol of {x}?")
ATOMIC_NUMBER = ("What is the atomic number of {x}?", "Which atomic number does {x} have?",
                 "How many protons does an atom of {x} have?",
                 "What number does {x} have in the periodic table?")
FORMULA = ("What is the chemical formula of {x}?", "What is the formula for {x}?",
           "How is {x} written as a chemical formula?", "Which chemical formula describes {x}?")
POINT = ("What is the {point} point of {x}?", "At what temperature {do} {x} {verb}?",
         "At which temperature {do} {x} {verb}?", "How hot must {x} get to {verb}?")
STATE = ("Is {x} a solid, a liquid or a gas at room temperature?",
         "In what state {be} {x} at room temperature?", "What state of matter {be} {x} at room temperature?",
         "At room temperature, is {x} a solid, liquid or gas?")
ELEMENT_GROUP = ("Which group of elements {do} {x} belong to?", "What family of elements {be} {x} part of?",
                 "Where {be} {x} in the periodic table?", "Which group of the periodic table {be} {x} in?")
CLIMATE = ("What is the {attr} of {x} like?", "Describe the {attr} of {x}.",
           "What kind of {attr} {do} {x} have?", "How would you describe the {attr} of {x}?")
POINT_VERBS = {"melting point": {"point": "melting", "verb": "melt"},
               "boiling point": {"point": "boiling", "verb": "boil"}}


def _p(kind: str, intent: str, part: str, phrasings: tuple[str, ...], regex: str,
       kinds: set[str] | None = None, domains: set[str] | None = None) -> Pattern:
    return Pattern(kind, intent, part, re.compile(regex), phrasings, frozenset(kinds) if kinds else None,
                   frozenset(domains) if domains else None)


PATTERNS = (
    # where it is
    _p("location", "where", "predicate", WHERE,
       rf"{BE}(?:located|situated)\b|(?:lies|lie|lay)\s+(?:\w+ly\s+)?"
       r"(?:in|on|at|between|near|off|along|within|across|about|some)\b", {THING, PLACE}),
    _p("location", "where", "predicate", WHERE,
       r"(?:is|are)\s+(?:an?|the)\s+[^,;]{0,60}?\b(?:located|situated|lying)\s+(?:\w+ly\s+)?"
       r"(?:in|on|at|between|near|off|along|within)\b", {THING, PLACE}),
    _p("location", "where", "sentence", LIVE,
       r"\b(?:native to|endemic to|ranging (?:only |mainly )?(?:in|across|from|throughout)|"
       r"found (?:only |mainly |mostly |primarily )?(?:in|on|throughout|across)|lives? (?:in|on)|inhabits?|"
       r"occurs? (?:in|on|throughout))\b", {SPECIES}),
    _p("location", "where", "attribute", LIVE,
       rf"{_ATTR}(?:habitat|range|distribution)s?\s+(?:is|are|includes?|extends?|covers?|spans?|stretches)\b",
       {SPECIES}),
    _p("location", "where", "predicate", FOUND, rf"{BE}found\s+(?:in|on|throughout|across|at)\b", {THING}),
    _p("location", "river", "sentence", RIVER,
       r"\bon the (?:banks? of the |shores? of the )?(?:[A-Z][\w-]+\s+){1,2}River\b", {PLACE}),
    _p("location", "constellation", "sentence", CONSTELLATION,
       r"\bconstellation(?: of)? [A-Z][a-z]+\b|\bin the (?:northern |southern )?constellation\b",
       {THING}, {"astronomy"}),
    _p("location", "orbits", "predicate", ORBITS,
       r"orbits?\s+(?:around\s+)?(?:the\s+)?[A-Z]\w+|"
       r"(?:is|are)\s+(?:a|the)\s+(?:[\w-]+\s+){0,2}?(?:moon|satellite)s?\s+of\s+(?:the\s+)?[A-Z]",
       {THING}, {"astronomy"}),
    _p("location", "borders", "sentence", BORDERS,
       r"\b(?:(?:bordered|bounded|surrounded)\b[^.;]{0,40}?\bby|borders|"
       r"shares (?:an? )?(?:land |maritime )?borders?)\b", {PLACE}),
    _p("location", "flow", "predicate", FLOW,
       r"(?:flows?|runs?|drains?|empties|empty)\s+(?:\w+ly\s+)?"
       r"(?:into|through|from|across|for|north|south|east|west)\b", {PLACE, THING}, {"geography"}),
    # what it is made of
    _p("composition", "division", "predicate", DIVIDED, rf"{BE}(?:sub)?divided\s+into\b", {THING, PLACE}),
    _p("composition", "includes", "predicate", INCLUDES,
       r"(?:includes|include|comprises|comprise)\s+(?:the\s+)?[a-z]", {THING}),
    _p("composition", "composition", "predicate", MADE_OF,
       rf"{BE}(?:made|composed)\s+(?:up\s+)?(?:of|from)\b", {THING}),
    _p("composition", "composition", "predicate", CONSIST_OF,
       r"(?:consists?|consisted)\s+(?:\w+ly\s+)?of\b|"
       r"(?:is|are)\s+(?:an?)\s+[^,;]{0,60}?\b(?:consisting|composed|made up)\s+(?:\w+ly\s+)?of\b",
       {THING, PLACE}),
    # what it does, what it is for
    _p("function", "function", "predicate", FUNCTION,
       r"(?:\w+ly\s+)?(?:pumps?|filters?|secretes?|produces?|regulates?|controls?|transports?|stores?|"
       r"protects?|absorbs?|digests?|detects?|converts?|removes?|supplies|supply|carries|carry|coordinates?|"
       r"helps?|aids?|allows?|enables?|maintains?|breaks? down|sends?|receives?|connects?)\b|"
       rf"{BE}(?:responsible|essential|vital)\s+for\b|"
       r"(?:plays?|serves?)\s+(?:an?\s+)?(?:\w+\s+)?(?:role|function)\b|(?:functions?|serves?|acts?)\s+as\b",
       {BODY}),
    _p("function", "function", "attribute", FUNCTION,
       rf"{_ATTR}(?:function|role|job|purpose)s?\s+(?:is|are|include)\b", {BODY}),
    _p("use", "use", "predicate", USE, rf"{BE}(?:used|applied|employed)\s+(?:to|for|in|as)\b", {THING}),
    _p("use", "study", "predicate", STUDY,
       rf"{BE}(?:the\s+)?(?:scientific\s+|systematic\s+)?study\s+of\b|"
       rf"{BE}(?:an?|the)\s+(?:[\w-]+\s+){{0,3}}?(?:science|branch|field)\b[^,;.]{{0,40}}?\b(?:that|which)\s+"
       r"stud(?:ies|y)\b|studies\b", {THING}),
    _p("use", "measure", "predicate", MEASURED, rf"{BE}measured\s+(?:in|with|by|using)\b", {THING}),
    _p("production", "production", "predicate", PRODUCED,
       rf"{BE}(?:produced|manufactured|obtained|extracted|prepared|synthesi[sz]ed)\s+(?:[\w-]+\s+){{0,3}}?"
       r"(?:by|from|through|via)\b", {THING}),
    # animals
    _p("diet", "diet", "predicate", DIET,
       r"(?:\w+ly\s+)?(?:feeds?|fed|preys?|preyed)\s+(?:\w+ly\s+)?(?:on|upon)\b|(?:\w+ly\s+)?eats?\b|"
       r"(?:is|are)\s+(?:an?\s+)?(?:\w+\s+)?(?:carnivor|herbivor|omnivor|insectivor|piscivor|frugivor)"
       r"(?:ous|es?)\b", {SPECIES}),
    _p("diet", "diet", "attribute", DIET, rf"{_ATTR}(?:diet|prey|food)\b", {SPECIES}),
    _p("appearance", "appearance", "predicate", LOOK,
       rf"(?:has|have|had)\s+(?:an?\s+)?(?:[\w-]+,?\s+(?:and\s+)?){{0,4}}?{_BODY_PART}\b|"
       rf"{BE}(?:characteri[sz]ed|distinguished|recogni[sz]able|identifiable)\s+by\b", {SPECIES}),
    _p("appearance", "appearance", "attribute", LOOK, rf"(?:[\w-]+\s+){{0,2}}?{_BODY_PART}\s+(?:is|are)\b",
       {SPECIES}),
    # causes and processes
    _p("cause", "cause", "predicate", CAUSE,
       rf"{BE}caused\s+by\b|(?:results?|resulted)\s+from\b|(?:is|are)\s+(?:\w+ly\s+)?(?:the\s+)?result\s+of\b",
       {THING}),
    _p("cause", "formation", "predicate", FORM,
       r"(?:forms?|develops?)\s+(?:\w+ly\s+)?(?:when|where|as|if|from|through|in)\b|"
       rf"{BE}formed\s+(?:\w+ly\s+)?(?:when|by|from|as|through|during|in)\b", {THING}),
    _p("cause", "occurrence", "predicate", OCCUR, r"(?:occurs?|happens?)\s+(?:\w+ly\s+)?(?:when|if|during)\b",
       {THING}),
    _p("cause", "symptoms", "sentence", SYMPTOMS,
       r"\b(?:symptoms|signs)\b[^.;]{0,40}\b(?:include|are|may include|involve)\b", {THING}, {"anatomy"}),
    _p("cause", "treatment", "sentence", TREATMENT,
       r"\b(?:treated (?:with|by)|treatment (?:is|includes|involves|may include))\b", {THING}, {"anatomy"}),
    # names and belonging
    _p("name", "name", "predicate", NAME, r"(?:is|are|was|were)\s+named\s+(?:after|for)\b"),
    _p("name", "name", "attribute", NAME,
       r"(?:\w+\s+)?name\s+(?:\w+\s+){0,3}?(?:derives?|is derived|was derived|comes?|came|originates?|"
       r"originated)\s+from\b"),
    _p("part", "part", "predicate", PART, rf"{BE}(?:an?\s+|the\s+)?(?:\w+\s+)?part\s+of\b", {THING, PLACE}),
    _p("part", "member", "predicate", MEMBER, rf"{BE}(?:an?\s+)?members?\s+of\s+the\b", {THING, SPECIES}),
    _p("part", "element group", "predicate", ELEMENT_GROUP,
       rf"{BE}(?:an?\s+|the\s+)?(?:[\w-]+\s+){{0,2}}?{_ELEMENT_GROUP}s?\b", {THING}, {"chemistry"}),
    _p("part", "element group", "sentence", ELEMENT_GROUP, r"\bgroup \d+ of the periodic table\b", {THING},
       {"chemistry"}),
    # properties
    _p("property", "capital", "attribute", CAPITAL,
       rf"{_ATTR}capital(?: city)?(?:,\s+[A-Z]|\b[^.;]{{0,80}}?\bis\s+[A-Z])", {PLACE}),
    _p("property", "language", "sentence", LANGUAGE, r"\bofficial languages?\b", {PLACE}),
    _p("property", "language", "attribute", LANGUAGE, r"(?:official|national)\s+languages?\b", {PLACE}),
    _p("property", "largest city", "attribute", LARGEST_CITY,
       r"(?P<largest>largest|most populous|most populated|biggest)\s+city\b[^.;]*?\bis\s+[A-Z]", {PLACE}),
    _p("property", "climate", "attribute", CLIMATE,
       r"(?P<attr>climate|atmosphere|surface|economy|terrain|landscape)\s+"
       r"(?:is|are|was|consists|varies|ranges)\b", {THING, PLACE}),
    _p("appearance", "appearance", "predicate", LOOK,
       rf"{BE}an?\s+(?:[\w-]+,?\s+(?:and\s+)?){{0,3}}?{_COLOUR}\b", {THING}, {"chemistry"}),
    _p("property", "state", "sentence", STATE,
       rf"\b(?:gas|liquid|solid)\b[^.;]{{0,30}}\b{_STANDARD}|\b{_STANDARD}\b[^.;]{{0,40}}\b(?:gas|liquid|solid)\b",
       {THING}, {"chemistry"}),
    _p("property", "symbol", "sentence", SYMBOL, r"\bsymbol\s+(?:is\s+)?[\"“]?[A-Z][a-z]?\b", {THING}),
    _p("property", "atomic number", "sentence", ATOMIC_NUMBER, r"\batomic number\s+(?:is\s+|of\s+)?\d+",
       {THING}),
    _p("property", "formula", "sentence", FORMULA,
       r"\b(?:chemical|molecular)\s+formula\s+(?:is\s+)?[A-Z][A-Za-z0-9₀-₉()·]*", {THING}),
    _p("property", "melting point", "sentence", POINT, rf"\bmelting point\b[^.;]{{0,40}}?{NUM}\s*°", {THING}),
    _p("property", "boiling point", "sentence", POINT, rf"\bboiling point\b[^.;]{{0,40}}?{NUM}\s*°", {THING}),
    # numbers
    _p("number", "distance", "sentence", DISTANCE,
       r"\borbits?\s+(?:around\s+)?(?P<center>the\s+[A-Z]\w+|[A-Z]\w+)\s+at\s+"
       r"(?:an?\s+)?(?:average\s+|mean\s+)?distance\s+of\b", {THING}),
    _p("number", "distance", "sentence", DISTANCE,
       rf"\b(?:is|lies|located)\s+{ABOUT}{_MEASURE}(?:away\s+)?from\s+(?P<center>the\s+[A-Z]\w+|Earth)\b",
       {THING}),
    _p("number", "length", "sentence", LENGTH, rf"{_MEASURE}(?:long|in length)\b", {THING, PLACE, SPECIES}),
    _p("number", "length", "attribute", LENGTH, rf"{_ATTR}length\b[^.;]*\d", {THING, PLACE, SPECIES}),
    _p("number", "height", "sentence", HEIGHT,
       rf"{_MEASURE}(?:high|tall)\b|\b(?:height|elevation|altitude) of {ABOUT}{NUM}", {THING, SPECIES}),
    _p("number", "height", "attribute", HEIGHT, rf"{_ATTR}(?:height|elevation)\b[^.;]*\d", {THING, SPECIES}),
    _p("number", "elevation", "sentence", ELEVATION,
       rf"{_MEASURE}(?:high|tall|above sea level)\b|\b(?:height|elevation|altitude) of {ABOUT}{NUM}",
       {PLACE}),
    _p("number", "elevation", "attribute", ELEVATION, rf"{_ATTR}(?:height|elevation|altitude)\b[^.;]*\d",
       {PLACE}),
    _p("number", "depth", "sentence", DEPTH, rf"{_MEASURE}deep\b|\bdepth of {ABOUT}{NUM}", {THING, PLACE}),
    _p("number", "population", "sentence", POPULATION,
       rf"\bpopulation\s+(?:of|is|was|estimated at|exceeds)\s+{ABOUT}{NUM}|"
       rf"\bhome to\s+{ABOUT}{NUM}\s+(?:people|inhabitants|residents)\b", {PLACE}),
    _p("number", "population", "attribute", POPULATION, rf"{_ATTR}population\b[^.;]*\d", {PLACE}),
    _p("number", "area", "sentence", AREA,
       rf"\b(?:an?\s+)?(?:total\s+|land\s+)?area of {ABOUT}{NUM}\s*{_SQUARE}", {PLACE}),
    _p("number", "area", "attribute", AREA, rf"{_ATTR}area\b[^.;]*?{NUM}\s*{_SQUARE}", {PLACE}),
    _p("number", "diameter", "sentence", DIAMETER, rf"\bdiameter of {ABOUT}{NUM}", {THING}),
    _p("number", "diameter", "attribute", DIAMETER, rf"{_ATTR}diameter\b[^.;]*\d", {THING}),
    _p("number", "mass", "sentence", MASS, rf"\bmass of {ABOUT}{NUM}", {THING}),
    _p("number", "orbital period", "sentence", ORBIT_PERIOD,
       rf"\borbital period of\b|\borbits?\b[^.;]*?\bevery\s+{NUM}\s+(?:days|years|hours)", {THING}),
    _p("number", "weight", "sentence", WEIGHT, rf"\bweigh(?:s|ing)?\s+{ABOUT}{NUM}", {SPECIES, BODY}),
    _p("number", "lifespan", "sentence", LIFESPAN,
       rf"\b(?:live|lives|living)\s+(?:for\s+)?{ABOUT}{NUM}\s+years|\b(?:life ?span|life expectancy) of\b",
       {SPECIES}),
    _p("number", "temperature", "sentence", TEMPERATURE, rf"\bsurface temperature\b[^.;]{{0,40}}?{NUM}",
       {THING}),
    _p("number", "speed", "sentence", SPEED,
       rf"\b(?P<move>run|swim|fly)s?\b[^.;]{{0,40}}?{NUM}\s*"
       r"(?:km/h|mph|kilomet(?:re|er)s per hour|miles per hour)", {SPECIES}),
)
