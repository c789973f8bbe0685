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
# Strength 3 = strong, 2 = moderate, 1 = mild. Strong words are never hedged.
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
    1: _split("slow|uneven|underwhelming|flawed|thin|clunky|awkward|drab"),
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

# --- evaluative verbs --------------------------------------------------------
# (past form, base form). Used as "I loved the ending" / "I did not love it".
POS_VERBS = (
    ("loved", "love"),
    ("enjoyed", "enjoy"),
    ("adored", "adore"),
    ("liked", "like"),
    ("admired", "admire"),
    ("savored", "savor"),
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
    "restaurant": _split(
        "the restaurant|this place|the bistro|this diner|the cafe|this tavern|the brasserie|this trattoria"
    ),
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
        "the gameplay|the story|the combat|the soundtrack|the level design|the control scheme|"
        "the visual style|the multiplayer|the final boss|the campaign|the puzzle design|the voice acting|"
        "the map|the menu system"
    ),
}

FIRST_NAMES = _split(
    "Anna|Ben|Carla|David|Elena|Farid|Grace|Hugo|Irene|Jonas|Kira|Leo|Maya|Nadia|Oscar|Priya|Quentin|"
    "Rosa|Samir|Tessa|Umar|Vera|Walter|Xenia|Yusuf|Zoe|Amir|Bianca|Cyrus|Dalia|Emil|Fiona|Gideon|"
    "Hana|Ivan|Jade|Karim|Lena|Marco|Nora|Otto|Paula|Rafael|Sofia|Tomas|Ursula|Victor|Wanda|Yara|"
    "Zack|Alma|Boris|Chloe|Dmitri|Esme|Felix|Greta|Hassan|Ines|Jasper|Keiko|Lucas|Mina|Nico|Olga|"
    "Pedro|Ruth|Stefan|Talia|Uma|Viktor|Willa|Arjun|Beatrix|Cole|Daria|Eli|Frida|Gustav|Hollis|Isla|"
    "Joaquin|Kofi|Lars|Marisol|Nell|Omar|Pia|Reza|Sadie|Theo|Ada|Bruno|Celia|Dev|Edith|Finn|Gemma|"
    "Henrik|Imani|Jules|Kenji|Lidia|Milo|Noor|Orla|Percy|Aurora|Basil|Cora|Dante|Elsa|Fabian|Gloria|"
    "Hector|Ingrid|Jorge|Katya|Linus|Mabel|Nestor|Ophelia|Pablo|Rhea|Silas|Thea|Ulrich|Valentina|"
    "Wendell|Yasmin|Zora|Ansel|Brigid|Caspar|Delphine|Ezra|Flora|Gunnar|Hattie|Idris|Juno|Kasper|"
    "Leonie|Magnus|Nina|Orson|Petra|Rowan|Selma|Tobias|Una|Vivian|Wes|Ximena|Yannick|Zelda|Agnes|"
    "Bram|Clara|Desmond|Elif|Florian|Gita|Hamid|Isadora|Jin|Kamala|Lorenzo|Mirela|Nils|Odette|Piotr|"
    "Rania|Sven|Tamsin|Vito|Wilhelmina|Aziz|Bettina|Abel|Birgit|Cosmo|Dorothea|Emeka|Fatima|Gael|"
    "Helga|Ilya|Jolene|Kwame|Lotte|Mateo|Nanami|Osric|Paloma|Quincy|Renata|Sorin|Tove|Ugo|Vesna|"
    "Wolfgang|Yael|Zainab|Alonzo|Bodil|Ciaran|Dagny|Enzo|Fenna|Gaspard|Hilde|Ignacio|Jakob|Kalani|"
    "Liesel|Mehmet|Nayeli|Oona|Pascal|Roisin|Santiago|Tamar|Uriel|Vilja|Warrick|Yoshiro|Zuzana|Anouk|"
    "Benedikt|Calla|Dorian|Eamon|Faye|Gulnara|Horatio|Ilse|Jovan|Kerstin|Lazlo|Marguerite|Nikolai|"
    "Ottilie|Philippa|Radek|Saoirse|Thaddeus|Ulla|Vadim|Winifred|Yevgenia|Zoltan|Ambrose|Bronwyn|"
    "Cedric|Dagmar|Ernesto|Freya"
)
SURNAMES = _split(
    "Alvarez|Brandt|Castillo|Dunmore|Eriksen|Fairweather|Gallo|Hartley|Ibarra|Jansen|Kowalski|"
    "Lindqvist|Moreau|Novak|Okafor|Petrov|Quinlan|Rossi|Santos|Takeda|Underwood|Varga|Whitlock|"
    "Yilmaz|Zeller|Ashby|Brennan|Cortez|Delacroix|Esposito|Fischer|Granger|Holm|Iwata|Jovanovic|"
    "Keller|Lambert|Mendes|Nakamura|Ortega|Pryce|Reyes|Sokolov|Thorne|Ueda|Vance|Wexler|Abbott|"
    "Adeyemi|Bergstrom|Carrow|Dimitriou|Ellery|Ferreira|Gunnarsson|Haddad|Ishikawa|Jablonski|Kaur|"
    "Larkin|Marchetti|Nilsson|Oyelaran|Pellegrini|Rasmussen|Szabo|Tanaka|Valdez|Winslow|Xu|Yamada|"
    "Zhou|Achterberg|Blackwood|Conti|Duarte|Engel|Farrow|Gomes|Hollander|Iverson|Jaramillo|Kovac|"
    "Lund|Morrison|Nakashima|Oduya|Paredes|Ribeiro|Strand|Aguilar|Birkeland|Calloway|Demir|Eastwood|"
    "Falkner|Grimaldi|Hassan|Ingram|Jacobsen|Kimura|Lozano|Mbeki|Nordgren|Orlov|Pacheco|Quist|"
    "Rinaldi|Salazar|Tremblay|Uchida|Vukovic|Wainwright|Yoon|Zamora|Ambrosi|Bauer|Cardenas|Doyle|"
    "Eklund|Fontaine|Gutierrez|Halvorsen|Ivanova|Jensen|Kearney|Leclerc|Maalouf|Nwosu|Olsen|Park|"
    "Quiroga|Rourke|Schultz|Tavares|Ulrich|Villanueva|Webb|Yusupov|Zapata"
)
PLACES = _split(
    "Lisbon|Oslo|Marseille|Tangier|Glasgow|Kraków|Valparaíso|Osaka|Tbilisi|Halifax|Trieste|Reykjavik|"
    "Nairobi|Montreal|Seville|Gdansk|Hobart|Cairo|Lagos|Bergen|Naples|Dublin|Tallinn|Porto|Lyon|"
    "Antwerp|Bruges|Galway|Palermo|Zagreb|Ljubljana|Quebec|Mombasa|Hanoi|Kyoto|"
    "a small fishing village|a mining town|a remote island|a border town|a mountain resort|"
    "a sleepy suburb|a northern port|a coastal city|an old river town|a desert outpost|"
    "a crowded capital|a lakeside village|a research station|a farming valley|Bilbao|Split|Tromsø|"
    "Genoa|Aberdeen|Cork|Turku|Riga|Vilnius|Odessa|Izmir|Tunis|Dakar|Accra|Zanzibar|Goa|Penang|Busan|"
    "Sapporo|Hilo|Valdivia|Cusco|Oaxaca|Havana|Savannah|Duluth|Winnipeg|Anchorage|Perth|Dunedin|"
    "a hill town|a harbor city|a ski village|a canal town|a steel town|a market town|"
    "an island ferry port|a university town|Salzburg|Graz|Lucerne|Innsbruck|Bratislava|Sarajevo|"
    "Thessaloniki|Heraklion|Valletta|Cagliari|Nantes|Rouen|Ghent|Utrecht|Groningen|Aarhus|Uppsala|"
    "Kiruna|Murmansk|Yerevan|Baku|Samarkand|Almaty|Ulaanbaatar|Harbin|Chiang Mai|Luang Prabang|Hue|"
    "Cebu|Darwin|Nelson|Suva|Apia|Nuuk|Tórshavn|Lerwick|Inverness|Swansea|a river delta|a salt marsh|"
    "a forest camp|a lumber town|a walled city|a spa town|a pilgrim town|a fishing island"
)
OCCUPATIONS = _split(
    "a retired detective|a young nurse|a ship's cook|a struggling painter|a night watchman|"
    "a schoolteacher|a lighthouse keeper|a former boxer|a travelling salesperson|"
    "a court stenographer|a cartographer|a beekeeper|a taxi driver|a disgraced surgeon|"
    "a junior lawyer|a museum guard|a pastry chef|a translator|a radio host|a widowed farmer|"
    "a locksmith|a jazz pianist|a park ranger|a bookkeeper|a diplomat|a stage magician|"
    "a marine biologist|a mail carrier|a rookie reporter|a carpenter|a chess prodigy|an archivist|"
    "an astronomer|an ex-soldier|a gardener|a forger|a ferry captain|a tailor|a geologist|"
    "a hotel clerk|a piano tuner|a retired judge|a tugboat pilot|a librarian|a flower seller|"
    "a dog walker|a choir director|an insurance clerk|a film projectionist|a stonemason|a watchmaker|"
    "a customs officer|a trapeze artist|a wedding planner|a sound engineer|a bus driver|"
    "a glassblower|a night nurse|a scrap dealer|a tour guide|a fencing coach|a veterinarian|"
    "a clockmaker|a seamstress|a shepherd|a zookeeper|a bike courier|a florist|an organist|"
    "a puppeteer|a crossing guard|a lab technician|a notary|a cook on an oil rig|a dentist|"
    "a surveyor|a hairdresser|a bartender|a sculptor|a ferryman|a harbor master|a ticket inspector|"
    "a tattoo artist|a mushroom picker|a rope maker|a falconer|a toll collector|a lifeguard|"
    "a perfumer|a milliner"
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
    "|finds {object} under the floorboards|trades {object} for a ride to {place}|"
    "buys {object} at a flea market in {place}|hides {object} in an old oak tree|"
    "is accused of stealing {object} from a museum|repairs {object} for {relative}|"
    "wins {object} in a card game|mails {object} to {relative} in {place}|"
    "takes a night bus to {place} with {object} in a bag|sells {object} to pay the rent|"
    "breaks into a warehouse in {place}|rents a rowing boat to reach the lighthouse|"
    "starts working nights at a bakery in {place}|adopts a stray cat named {name2}|"
    "organizes a strike at the cannery|digs up a time capsule buried by {relative}|"
    "builds a greenhouse behind the school|tutors {name2} in chemistry|"
    "inherits a vineyard in {place}|joins a choir to impress {name2}|"
    "writes letters to a prisoner in {place}|sets up a pirate radio station on a barge|"
    "swaps houses with a stranger from {place}|climbs the cathedral tower at midnight|"
    "drives an ice cream van through {place}|photographs every bridge in {place}"
    "|meets {name2} at {spot}|spends a night locked inside {spot}|follows a stranger to {spot}|"
    "hides from the police in {spot}|gets a job cleaning {spot}|finds {object} behind {spot}|"
    "proposes to {name2} in {spot}|sketches the regulars at {spot}|waits for {relative} outside {spot}|"
    "sneaks into {spot} after closing|runs a card game in the basement of {spot}|"
    "keeps bees on the roof of {spot}|repaints {spot} for the village fair"
)
PLOT_FOLLOW_UPS = _split(
    "Meanwhile, {name2} {event}.|Years later, {name} {event}.|Soon after, {name2} {event}.|"
    "In the second half, {name} {event}.|In the same week, {name2} {event}.|"
    "After that, {name} {event}.|Later on, {name2} {event}.|Eventually, {name} {event}.|"
    "Before long, {name2} {event}.|By the winter, {name} {event}."
)
DISHES = _split(
    "the lamb stew|the grilled octopus|the mushroom risotto|the duck breast|the fish tacos|"
    "the lentil soup|the roast chicken|the beef curry|the pork belly|the gnocchi|the paella|"
    "the ramen|the crab cakes|the tasting menu|the cheese plate|the apple tart|the chocolate cake|"
    "the tiramisu|the lemon sorbet|the oysters|the flatbread|the burger|the fried rice|the pad thai|"
    "the goulash|the moussaka|the dumplings|the falafel|the schnitzel|the tagine|the smoked trout|"
    "the pumpkin ravioli|the lamb chops|the clam chowder|the bibimbap|the pierogi|the shakshuka|"
    "the ceviche|the pho|the carbonara|the risotto cakes|the ribeye|the halloumi|the poke bowl|"
    "the jambalaya|the empanadas|the bouillabaisse|the lasagna|the gazpacho|the pavlova|the baklava|"
    "the creme brulee|the panna cotta|the churros|the scallops|the mussels|the calamari|"
    "the veal cutlet|the chili|the porridge"
)
OBJECTS = _split(
    "a brass compass|an old typewriter|a music box|a stolen painting|a cedar chest|a silver locket|"
    "a pocket watch|a violin case|a box of negatives|a ship in a bottle|a set of keys|"
    "a rusty bicycle|a tin of buttons|a ledger|a pair of binoculars|a jade figurine|a film reel|"
    "a chess set|a telescope|a wedding dress|a cassette tape|a bag of seeds|a ceramic owl|a diary|"
    "a crossbow|a taxidermy fox|a stack of postcards|a radio transmitter|a gold tooth|a birdcage|"
    "a sealed envelope|a porcelain doll|a dented trumpet|a carved walking stick|a map of the sewers|"
    "a box of old coins|a polaroid camera|a hand-drawn atlas|a harmonica|a stuffed parrot|"
    "a brass key|a wind-up toy|a tattered flag|a glass eye|a jar of marbles|a typewritten manuscript|"
    "a folding knife|a lantern|a snow globe|a tarot deck|a model train|a leather satchel|"
    "a sketchbook|a barometer|a fountain pen|a copper kettle|a hat box|a bundle of telegrams|"
    "a compass rose|a hunting horn"
)
SPOTS = _split(
    "the old cannery|a night market|the train depot|a roadside motel|the town archive|"
    "a bowling alley|the botanical garden|a shuttered cinema|the fish market|a laundromat|"
    "the ferry terminal|an abandoned observatory|a billiard hall|the county fairground|a greenhouse|"
    "the customs house|a dance studio|the aquarium|a planetarium|the boathouse|a pawnshop|"
    "the ice rink|a tram depot|the clock tower|a bus shelter|the public baths|a toy factory|"
    "the racetrack|a monastery|a quarry|a lighthouse cafe|the old mill|a ferris wheel|the salt works|"
    "a roller rink|the opera house|a hat shop|the orphanage|a boatyard|the signal box|a wax museum|"
    "the gasworks|a toll bridge|the ski lift|a flower market"
)
ACCESSORIES = _split(
    "a spare filter|a carrying case|a wall mount|two extra blades|a cleaning brush|a charging dock|"
    "a measuring cup|a travel pouch|a remote control|a set of adapters|a storage bag|a user guide"
)
DRINKS = _split(
    "house red|mint lemonade|espresso|ginger beer|pear cider|iced tea|sparkling water|dark ale|"
    "hot chocolate|rosé|plum brandy|cold brew"
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
OLD_THINGS = _split("kettle|blender|lamp|radio|drill|toaster|backpack|router|speaker|keyboard|camera|heater")
STORES = _split(
    "a shop in town|a market stall|a website|a department store|a hardware store|"
    "an outlet near the station|a garage sale"
)
GENRES = _split(
    "crime story|family saga|war story|coming-of-age story|road movie|heist story|"
    "ghost story|courtroom drama|sports story|romantic comedy|space adventure|period piece|"
    "political thriller|mystery|fantasy epic|survival story|spy caper|musical|"
    "chamber piece|fairy tale|buddy comedy|monster story|detective yarn|family drama|satire|folk tale"
)
SETTINGS = _split(
    "in the nineteen fifties|during a long winter|over a single weekend|in the near future|"
    "in the years after the war|on a cargo ship|in a boarding school|in a small hotel|"
    "in a hospital|across three generations|on a remote farm|in a crowded apartment block|"
    "on a night train|in a mountain village|during a heat wave|in a floating city|on the eve of an election|"
    "inside a department store|at a summer camp|on a whaling ship|in a border checkpoint|during a flood"
)
