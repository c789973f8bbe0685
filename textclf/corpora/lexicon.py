"""Word lists for the generated ``reviews`` corpus.

Everything here is plain data, written for this project: evaluative words
(with polarity and strength), the degree words and negators that modify them,
and the neutral material (names, places, plot events, dishes, products) that
fills reviews without carrying sentiment.

Lists are stored as ``|``-separated strings to keep the file compact; the
helpers at the bottom split them once at import time. Order matters: the
generator indexes into these tuples, so reordering changes generated corpora.
"""

from __future__ import annotations


def _split(text: str) -> tuple[str, ...]:
    return tuple(w.strip() for w in text.split("|") if w.strip())


# --- evaluative adjectives -------------------------------------------------
# Strength 3 = strong, 2 = moderate, 1 = mild. Strong negative adjectives are
# never negated ("not atrocious" is faint praise at best, not a clear positive).
POS_ADJ = {
    3: _split(
        "superb|brilliant|outstanding|magnificent|extraordinary|phenomenal|"
        "stunning|masterful|exceptional|flawless|breathtaking|sublime|"
        "spectacular|marvelous|exquisite|terrific|fantastic|wonderful|amazing|"
        "excellent|glorious|dazzling|remarkable|stellar"
    ),
    2: _split(
        "good|great|enjoyable|impressive|engaging|charming|delightful|solid|"
        "compelling|memorable|satisfying|entertaining|clever|polished|lovely|"
        "fun|refreshing|inventive|elegant|thoughtful|rewarding|absorbing|"
        "likeable|fascinating|smart|witty|beautiful|strong|confident|inspired"
    ),
    1: _split("decent|pleasant|nice|fine|competent|respectable|agreeable|sweet|neat"),
}
NEG_ADJ = {
    3: _split(
        "awful|terrible|dreadful|atrocious|abysmal|horrendous|appalling|"
        "unbearable|disastrous|excruciating|insufferable|inept|woeful|"
        "pathetic|dire|laughable|embarrassing|horrible|hopeless|wretched"
    ),
    2: _split(
        "bad|poor|boring|dull|tedious|disappointing|bland|clumsy|weak|"
        "forgettable|messy|lifeless|shallow|tiresome|sloppy|uninspired|"
        "annoying|lazy|confusing|stale|predictable|frustrating|mediocre|"
        "lackluster|cheap|pointless|joyless|irritating|muddled|hollow"
    ),
    1: _split("slow|uneven|underwhelming|flawed|thin|clunky|awkward|drab|so-so"),
}

# Domain-specific evaluative adjectives (positive, negative), moderate strength.
DOMAIN_ADJ = {
    "film": (
        _split("gripping|moving|suspenseful|heartfelt|haunting|funny"),
        _split("overlong|tedious|melodramatic|incoherent|wooden|plodding"),
    ),
    "book": (
        _split("gripping|lyrical|vivid|moving|insightful|page-turning"),
        _split("long-winded|plodding|overwritten|tedious|preachy|turgid"),
    ),
    "restaurant": (
        _split("delicious|tasty|fresh|flavorful|generous|attentive"),
        _split("bland|greasy|soggy|overcooked|stale|overpriced"),
    ),
    "product": (
        _split("sturdy|reliable|durable|intuitive|handy|responsive"),
        _split("flimsy|fragile|faulty|unreliable|fiddly|overpriced"),
    ),
    "game": (
        _split("addictive|immersive|responsive|gorgeous|challenging|rewarding"),
        _split("buggy|repetitive|clunky|unfair|grindy|broken"),
    ),
}

# --- evaluative noun phrases -------------------------------------------------
# "a masterpiece" / "a mess": used as predicates ("the film is a mess").
POS_NP = _split(
    "a masterpiece|a triumph|a gem|a delight|a joy|a treat|a pleasure|"
    "a revelation|a winner|a marvel|a knockout|a thrill|a success|a standout"
)
NEG_NP = _split(
    "a mess|a disaster|a letdown|a chore|a slog|a disappointment|a failure|"
    "a flop|a bore|a waste of time|a misfire|a dud|a shambles|a trainwreck"
)
# Negative noun phrases that read as a clear positive once negated.
NEG_NP_NEGATABLE = _split(
    "a mess|a letdown|a chore|a slog|a disappointment|a bore|a waste of time|a misfire"
)

# --- evaluative verbs --------------------------------------------------------
# (past form, base form). Used as "I loved the ending" / "I did not love it".
POS_VERBS = (
    ("loved", "love"), ("enjoyed", "enjoy"), ("adored", "adore"),
    ("liked", "like"), ("admired", "admire"), ("savored", "savor"),
)
NEG_VERBS = (("hated", "hate"), ("disliked", "dislike"), ("resented", "resent"))
# Passive experiencer frames: "I was moved by the score".
POS_PASSIVE = _split("impressed by|moved by|charmed by|won over by|delighted by|thrilled by")
NEG_PASSIVE = _split("bored by|disappointed by|annoyed by|let down by|put off by|frustrated by")
# Idioms that are negative although they contain a negator: a trap for
# bag-of-words models that treat "not" as a polarity flip everywhere.
NEG_IDIOMS = _split("could not stand|can't stand|could not get into|did not care for")

# --- degree words --------------------------------------------------------------
INTENSIFIERS = _split(
    "very|really|extremely|incredibly|truly|remarkably|thoroughly|genuinely|"
    "exceptionally|unbelievably|seriously|so|deeply|hugely|wonderfully|terribly"
)
# Only before strong adjectives ("utterly brilliant", "absolutely dreadful").
STRONG_INTENSIFIERS = _split("utterly|absolutely|completely|totally|simply")
HEDGES = _split(
    "somewhat|fairly|rather|a bit|a little|mostly|reasonably|quite|pretty|"
    "kind of|moderately|slightly|largely|occasionally"
)
# Degree words that can sit between a negator and the adjective: "not very good".
NEGATED_DEGREE = _split("very|particularly|especially|that|terribly|all that|remotely|exactly")

# --- framings that carry no polarity -----------------------------------------
FRAMINGS = _split(
    "Honestly,|Overall,|In short,|For what it is worth,|In my view,|Frankly,|"
    "All in all,|To my mind,|If you ask me,|Put simply,|On balance,|In the end,"
)
SIGN_OFFS = _split(
    "in my opinion|for me|if you ask me|as far as I am concerned|in the end|"
    "from start to finish|on the whole|to be honest"
)

# --- domains: items, aspects, neutral material -------------------------------
ITEMS = {
    "film": _split("the film|the movie|this picture|this thriller|this drama|this comedy|the sequel|this western"),
    "book": _split("the book|the novel|this memoir|this thriller|the sequel|this collection|this biography|the debut"),
    "restaurant": _split("the restaurant|this place|the bistro|this diner|the cafe|this tavern|the brasserie|this trattoria"),
    "product": _split(
        "this blender|the kettle|this vacuum|the toaster|this drill|the lamp|this router|the speaker|"
        "this backpack|the keyboard|this camera|the tablet|this heater|the mattress"
    ),
    "game": _split("the game|this title|the sequel|this shooter|this puzzler|this platformer|the remaster|this racer"),
}
ASPECTS = {
    "film": _split(
        "the acting|the script|the cast|the dialogue|the soundtrack|the score|the pacing|the ending|"
        "the cinematography|the direction|the plot|the lead performance|the editing|the humor|"
        "the screenplay|the final act|the opening scene|the villain|the premise|the camera work"
    ),
    "book": _split(
        "the prose|the plot|the ending|the narrator|the dialogue|the pacing|the opening chapter|"
        "the world-building|the heroine|the final chapter|the premise|the translation|"
        "the structure|the middle section|the cover design|the central mystery"
    ),
    "restaurant": _split(
        "the food|the service|the dessert|the pasta|the wine list|the atmosphere|the soup|the steak|"
        "the bread|the staff|the menu|the decor|the coffee|the seafood|the main course|the salad"
    ),
    "product": _split(
        "the battery|the build quality|the screen|the design|the packaging|the motor|the display|"
        "the manual|the finish|the handle|the power cord|the interface|the warranty service|the app"
    ),
    "game": _split(
        "the gameplay|the story|the combat|the soundtrack|the level design|the controls|the graphics|"
        "the multiplayer|the boss fights|the campaign|the puzzles|the voice acting|the map|the menus"
    ),
}

FIRST_NAMES = _split(
    "Anna|Ben|Carla|David|Elena|Farid|Grace|Hugo|Irene|Jonas|Kira|Leo|Maya|Nadia|Oscar|Priya|"
    "Quentin|Rosa|Samir|Tessa|Umar|Vera|Walter|Xenia|Yusuf|Zoe|Amir|Bianca|Cyrus|Dalia|Emil|"
    "Fiona|Gideon|Hana|Ivan|Jade|Karim|Lena|Marco|Nora|Otto|Paula|Rafael|Sofia|Tomas|Ursula|"
    "Victor|Wanda|Yara|Zack|Alma|Boris|Chloe|Dmitri|Esme|Felix|Greta|Hassan|Ines|Jasper|Keiko|"
    "Lucas|Mina|Nico|Olga|Pedro|Ruth|Stefan|Talia|Uma|Viktor|Willa|Arjun|Beatrix|Cole|Daria|"
    "Eli|Frida|Gustav|Hollis|Isla|Joaquin|Kofi|Lars|Marisol|Nell|Omar|Pia|Reza|Sadie|Theo|Ada|"
    "Bruno|Celia|Dev|Edith|Finn|Gemma|Henrik|Imani|Jules|Kenji|Lidia|Milo|Noor|Orla|Percy"
)
SURNAMES = _split(
    "Alvarez|Brandt|Castillo|Dunmore|Eriksen|Fairweather|Gallo|Hartley|Ibarra|Jansen|Kowalski|"
    "Lindqvist|Moreau|Novak|Okafor|Petrov|Quinlan|Rossi|Santos|Takeda|Underwood|Varga|Whitlock|"
    "Yilmaz|Zeller|Ashby|Brennan|Cortez|Delacroix|Esposito|Fischer|Granger|Holm|Iwata|Jovanovic|"
    "Keller|Lambert|Mendes|Nakamura|Ortega|Pryce|Reyes|Sokolov|Thorne|Ueda|Vance|Wexler|Abbott"
)
PLACES = _split(
    "Lisbon|Oslo|Marseille|Tangier|Glasgow|Kraków|Valparaíso|Osaka|Tbilisi|Halifax|Trieste|"
    "Reykjavik|Nairobi|Montreal|Seville|Gdansk|Hobart|Cairo|Lagos|Bergen|Naples|Dublin|Tallinn|"
    "Porto|Lyon|Antwerp|Bruges|Galway|Palermo|Zagreb|Ljubljana|Quebec|Mombasa|Hanoi|Kyoto|"
    "a small fishing village|a mining town|a remote island|a border town|a mountain resort|"
    "a sleepy suburb|a northern port|a coastal city|an old river town|a desert outpost|"
    "a crowded capital|a lakeside village|a research station|a farming valley"
)
OCCUPATIONS = _split(
    "a retired detective|a young nurse|a ship's cook|a struggling painter|a night watchman|"
    "a schoolteacher|a lighthouse keeper|a former boxer|a travelling salesman|a court stenographer|"
    "a cartographer|a beekeeper|a taxi driver|a disgraced surgeon|a junior lawyer|a museum guard|"
    "a pastry chef|a translator|a radio host|a widowed farmer|a locksmith|a jazz pianist|"
    "a park ranger|a bookkeeper|a diplomat|a stage magician|a marine biologist|a mail carrier|"
    "a rookie reporter|a carpenter|a chess prodigy|an archivist|an astronomer|an ex-soldier|"
    "a gardener|a forger|a ferry captain|a tailor|a geologist|a hotel clerk"
)
RELATIVES = _split(
    "an estranged brother|a younger sister|an elderly aunt|a childhood friend|a former partner|"
    "a long-lost cousin|a stepfather|a neighbor|a business rival|a grandmother|an old mentor|"
    "a twin sister|a landlord|a former student|an uncle"
)
PLOT_EVENTS = _split(
    "moves to {place} to start over|inherits an old house from {relative}|"
    "finds a stack of letters hidden in the attic|is hired to track down {relative}|"
    "tries to reopen the family bakery|agrees to help {name2} move a piano across town|"
    "discovers a map tucked inside a library book|takes a job at a hotel in {place}|"
    "sets out to cross the country by train|learns that {relative} has returned to {place}|"
    "spends a summer working on a fishing boat|enters a regional baking contest|"
    "receives a package with a key and an address in {place}|joins a traveling circus|"
    "witnesses a robbery at a gas station|is asked to deliver a suitcase to {place}|"
    "loses a bet and has to coach a youth football team|restores an old sailboat with {name2}|"
    "starts a radio show from a garage|goes looking for a missing dog in {place}|"
    "runs for mayor of {place}|signs up for an expedition to the glacier|"
    "opens a bookshop next to the harbor|tries to sell the family farm|"
    "takes over a failing newspaper in {place}|plans a wedding for {relative}|"
    "is snowed in at a mountain lodge with {name2}|finds a stranger asleep in the barn|"
    "returns to {place} for a funeral|trains for a marathon with {name2}|"
    "follows a trail of clues left by {relative}|teaches {name2} to drive|"
    "borrows money from {relative} to buy a food truck|gets stuck on an island after a storm|"
    "tracks a rare bird across the marshes|moves into a lighthouse with {name2}"
)
PLOT_FOLLOW_UPS = _split(
    "Meanwhile, {name2} {event}.|Years later, {name} {event}.|Soon after, {name2} {event}.|"
    "In the second half, {name} {event}.|At the same time, {name2} {event}.|"
    "After that, {name} {event}.|Later on, {name2} {event}.|Eventually, {name} {event}.|"
    "Before long, {name2} {event}.|By the winter, {name} {event}."
)
DISHES = _split(
    "the lamb stew|the grilled octopus|the mushroom risotto|the duck breast|the fish tacos|"
    "the lentil soup|the roast chicken|the beef curry|the pork belly|the gnocchi|the paella|"
    "the ramen|the crab cakes|the tasting menu|the cheese plate|the apple tart|the chocolate cake|"
    "the tiramisu|the lemon sorbet|the oysters|the flatbread|the burger|the fried rice|"
    "the pad thai|the goulash|the moussaka|the dumplings|the falafel|the schnitzel|the tagine"
)
COMPANIONS = _split(
    "my sister|two colleagues|my parents|a friend from work|my partner|the kids|my brother|"
    "an old classmate|my neighbors|my book club|my cousin|a group of friends|my grandmother"
)
WEEKDAYS = _split("Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday")
COLORS = _split("black|white|silver|navy blue|dark green|red|gray|cream|copper|sky blue")
PLATFORMS = _split("my laptop|the console|a handheld|my old desktop|a borrowed console|my tablet")
USES = _split(
    "making soup|morning coffee|small repairs|video calls|reading in bed|weekend trips|"
    "the home office|baking bread|the garden shed|long commutes|the guest room|school projects"
)
OLD_THINGS = _split(
    "kettle|blender|lamp|radio|drill|toaster|backpack|router|speaker|keyboard|camera|heater"
)
STORES = _split(
    "a shop in town|a market stall|a website|a department store|a hardware store|"
    "an outlet near the station|a friend who was moving"
)
GENRES = _split(
    "crime story|family saga|war story|coming-of-age story|road movie|heist story|"
    "ghost story|courtroom drama|sports story|romantic comedy|space adventure|period piece|"
    "political thriller|mystery|fantasy epic|survival story"
)
SETTINGS = _split(
    "in the nineteen fifties|during a long winter|over a single weekend|in the near future|"
    "in the years after the war|on a cargo ship|in a boarding school|in a small hotel|"
    "in a hospital|across three generations|on a remote farm|in a crowded apartment block"
)
