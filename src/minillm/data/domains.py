"""The six domains: what belongs to each, seed titles for the Wikipedia fetcher, and a keyword classifier.

What belongs where (the hand-labelled fixture ``tests/fixtures/labelled_articles.jsonl`` follows these rules):

- astronomy: celestial objects (planets, moons, stars, galaxies, nebulae, comets, asteroids), their events
  (eclipses, supernovae), orbits, cosmology, and astronomy with its telescopes and observatories. Not
  spaceflight or spacecraft, not astronomers, not astrology or gods that planets are named after.
- anatomy: the human body: organs, bones, muscles, tissues, cell types, body systems and their normal working
  (breathing, blood pressure, the senses). Not diseases, injuries, medicine, drugs, hormones or cell biology.
- animals: animal taxa of any rank, living or extinct (dinosaurs too), breeds, zoology, and body parts only
  animals have (feather, gill, compound eye). Not humans or hominins, plants, fungi, microbes, animal
  products.
- geography: places on Earth (countries and their regions, cities, continents, rivers, lakes, seas, islands,
  mountains, named deserts and forests), landforms and bodies of water as kinds, maps and coordinates. Not
  historical states, empires or ancient cities, peoples, buildings, or geology (rocks, tectonics,
  earthquakes).
- chemistry: elements, compounds, ions, atoms and their parts, bonds, reactions, branches of chemistry. Not
  the biochemistry of living things, drugs, minerals, materials and industries, or particle physics.
- weather: weather and the climate system: the atmosphere, clouds, precipitation, wind, storms, seasons,
  climate and climate zones (with the biome types named after them: desert, tundra, taiga, steppe, savanna,
  rainforest), the climate system's ice (glaciers, ice sheets, sea ice, permafrost), ocean currents, weather
  disasters, and measuring weather (temperature and its scales, thermometer, barometer, forecasting).
  The offline corpus has fewer than 100 articles on weather in the narrow sense; this wider reading is what
  gives the domain its 100.

How ``classify`` decides: every class (the six domains and ``other``, which stands for everything else)
collects points, and the class with the most points wins; ``other``, a tie, or fewer than MIN_SCORE points
mean None.

- Cues are short regexes per class, matched as whole words in the lowercased description (2 points each) and
  in the text's first sentence after its "is a"/"are" (1 point each). All cues form one regex, longest first,
  so "salt lake" is one geography cue and never a chemistry "salt" plus a lake.
- Wikipedia's short descriptions name the kind of thing first ("Species of bird", "Malignant tumor ... in lung
  tissue", "Chemical element with ..."), so the defining noun of each phrase earns a bonus: the last cue of
  the first "of"-chunk before a preposition or participle ("skin condition characterized by ..." ->
  condition, "inflammation of the brain" -> inflammation, "species of bird" -> bird).
- ``other`` has its own cues (people, creative works, medicine, plants, history, technology, physics,
  geology ...): an off-domain article is recognised, not merely left unmatched. A few generic phrases
  ("a planet's surface", "astronomical body") match but score for no class, so wind is not astronomy.
- Title words add 2 points; the offline corpus's ``topic`` field, when given, adds a prior (People strongly
  favours ``other``, Geography favours geography); without a topic the text alone decides.
- A title in SEED_TOPICS belongs to its domain outright: those are each domain's own vocabulary.
- Anatomy is human anatomy: an anatomy winner whose definition names non-human animal groups becomes animals
  ("Respiratory organ in aquatic animals"), one that names plants becomes None.

Left out on purpose: no learned model (this runs before any model exists and must be readable and exact),
no multi-label output, English only, and nothing past the first sentence of the text (later sentences drift
to neighbouring subjects: a city's article mentions its rivers and climate).
"""

from __future__ import annotations

import functools
import re

DOMAINS = ("astronomy", "anatomy", "animals", "geography", "chemistry", "weather")
OTHER = "other"  # the pseudo-class that competes with the six; classify() reports it as None
GENERIC = "generic"  # phrases that only mention a domain word in passing: they score for no class

# Exact Wikipedia titles (all present in the offline snapshot): the live fetcher's starting points, and
# each domain's core vocabulary for classify().
SEED_TOPICS: dict[str, tuple[str, ...]] = {
    "astronomy": (
        "Astronomy", "Sun", "Moon", "Earth", "Mercury (planet)", "Venus", "Mars", "Jupiter", "Saturn",
        "Uranus", "Neptune", "Pluto", "Ceres (dwarf planet)", "Solar System", "Asteroid", "Asteroid belt",
        "Comet", "Halley's Comet", "Meteorite", "Kuiper belt", "Oort cloud", "Star", "Sirius", "Betelgeuse",
        "Alpha Centauri", "Supernova", "Neutron star", "Black hole", "White dwarf", "Red giant", "Galaxy",
        "Milky Way", "Andromeda Galaxy", "Nebula", "Constellation", "Orion (constellation)", "Big Bang",
        "Universe", "Dark matter", "Cosmic microwave background", "Exoplanet", "Telescope",
        "Hubble Space Telescope", "Solar eclipse", "Titan (moon)", "Europa (moon)", "Light-year",
    ),
    "anatomy": (
        "Anatomy", "Human body", "Heart", "Lung", "Human brain", "Liver", "Kidney", "Stomach",
        "Small intestine", "Large intestine", "Esophagus", "Pancreas", "Spleen", "Bladder", "Skin",
        "Human skeleton", "Bone", "Skull", "Spinal cord", "Muscle", "Skeletal muscle", "Tendon", "Ligament",
        "Joint", "Cartilage", "Blood", "Red blood cell", "White blood cell", "Artery", "Vein",
        "Circulatory system", "Respiratory system", "Nervous system", "Neuron", "Human eye", "Ear", "Nose",
        "Tongue", "Human tooth", "Hand", "Thyroid", "Endocrine system", "Urinary system", "Lymphatic system",
        "Immune system", "Breathing",
    ),
    "animals": (
        "Animal", "Zoology", "Mammal", "Bird", "Fish", "Insect", "Reptile", "Amphibian", "Dog", "Cat",
        "Horse", "Cattle", "Elephant", "Lion", "Tiger", "Jaguar", "Wolf", "Bear", "Giraffe", "Zebra",
        "Blue whale", "Dolphin", "Shark", "Penguin", "Eagle", "Owl", "Chicken", "Frog", "Crocodile", "Turtle",
        "Snake", "Butterfly", "Ant", "Bee", "Spider", "Octopus", "Jellyfish", "Kangaroo", "Koala",
        "Giant panda", "Chimpanzee", "Gorilla", "Bat", "Tyrannosaurus", "Salmon",
    ),
    "geography": (
        "Geography", "Continent", "Africa", "Asia", "Europe", "North America", "South America", "Antarctica",
        "Pacific Ocean", "Atlantic Ocean", "Indian Ocean", "Arctic Ocean", "Mediterranean Sea", "Nile",
        "Amazon River", "Mississippi River", "Yangtze", "Ganges", "Mount Everest", "Himalayas", "Andes",
        "Alps", "Rocky Mountains", "Sahara", "Gobi Desert", "Great Barrier Reef", "Grand Canyon",
        "Lake Baikal", "Caspian Sea", "Niagara Falls", "Greenland", "Iceland", "Japan", "China", "India",
        "Brazil", "Egypt", "Canada", "Russia", "Australia", "France", "Mexico", "Tokyo", "Cairo", "Island",
        "River", "Mountain", "Volcano", "Lake", "Equator",
    ),
    "chemistry": (
        "Chemistry", "Chemical element", "Periodic table", "Atom", "Molecule", "Ion", "Electron", "Proton",
        "Neutron", "Isotope", "Chemical bond", "Covalent bond", "Ionic bonding", "Chemical reaction",
        "Chemical compound", "Acid", "Base (chemistry)", "PH", "Redox", "Combustion", "Catalysis", "Hydrogen",
        "Helium", "Carbon", "Nitrogen", "Oxygen", "Sodium", "Chlorine", "Iron", "Copper", "Gold", "Silver",
        "Mercury (element)", "Uranium", "Water", "Carbon dioxide", "Methane", "Ammonia", "Sodium chloride",
        "Sulfuric acid", "Ethanol", "Organic chemistry", "Noble gas", "Metal", "Alkali metal", "Hydrocarbon",
    ),
    "weather": (
        "Weather", "Climate", "Climate change", "Meteorology", "Weather forecasting", "Atmosphere of Earth",
        "Cloud", "Rain", "Snow", "Hail", "Fog", "Dew", "Frost", "Wind", "Storm", "Thunderstorm", "Lightning",
        "Tornado", "Tropical cyclone", "Cyclone", "Blizzard", "Monsoon", "Drought", "Flood", "Precipitation",
        "Humidity", "Water cycle", "Jet stream", "Weather front", "Air mass", "Atmospheric pressure",
        "High-pressure area", "Low-pressure area", "El Niño–Southern Oscillation", "Greenhouse effect",
        "Rainbow", "Season", "Winter", "Summer", "Spring (season)", "Autumn", "Temperature", "Thermometer",
        "Barometer", "Ice age", "Glacier", "Köppen climate classification", "Dust storm",
    ),
}

# Whole-word regexes per class, matched in the lowercased description and first sentence.
CUES: dict[str, tuple[str, ...]] = {
    "astronomy": (
        r"planets?", r"planetary", r"dwarf planets?", r"exoplanets?", r"moons? of", r"natural satellites?",
        r"satellite galax(?:y|ies)", r"stars?", r"stellar", r"star systems?", r"galax(?:y|ies)", r"galactic",
        r"nebula[e]?", r"comets?", r"asteroids?", r"meteor(?:s|oids?|ites?)?", r"constellations?",
        r"solar system", r"supernova[e]?", r"quasars?", r"pulsars?", r"black holes?", r"celestial",
        r"astronom\w*", r"astrophysic\w*", r"cosmolog\w*", r"cosmic", r"cosmos", r"universe", r"interstellar",
        r"interplanetary", r"telescopes?", r"observator(?:y|ies)", r"orbits?", r"orbital", r"orbiting",
        r"eclipses?", r"light-years?", r"white dwarfs?", r"red giants?", r"neutron stars?", r"outer space",
        r"big bang", r"dark matter", r"dark energy", r"the sun", r"night sky", r"solar wind",
        r"interstellar clouds?", r"magellanic clouds?",
    ),
    "anatomy": (
        r"human body", r"body parts?", r"parts? of the (?:human )?body", r"anatom\w*", r"organs?",
        r"organ systems?", r"bones?", r"bony", r"skeleton", r"skeletal", r"muscles?", r"muscular",
        r"tissues?", r"glands?", r"endocrine", r"blood vessels?", r"arter(?:y|ies)", r"veins?",
        r"capillar(?:y|ies)", r"nerves?", r"nervous system", r"brain", r"spinal cord", r"heart", r"lungs?",
        r"liver", r"kidneys?", r"stomach", r"intestines?", r"intestinal", r"digestive (?:system|tract)",
        r"gastrointestinal tract", r"alimentary canal", r"circulatory system", r"respiratory system",
        r"urinary", r"skin", r"teeth", r"tooth", r"reproductive (?:system|organs?|tract|cells?)", r"limbs?",
        r"torso", r"joints?", r"ligaments?", r"tendons?", r"cartilage", r"epitheli\w*", r"blood cells?",
        r"blood", r"neurons?", r"sensory (?:system|organ)s?", r"sense of", r"vision", r"hearing",
        r"breathing", r"heartbeat", r"extremity", r"appendage", r"humans and other animals",
    ),
    "animals": (
        r"animals?", r"mammals?", r"mammalian", r"birds?", r"fish(?:es)?", r"insects?", r"reptiles?",
        r"reptilian", r"amphibians?", r"arthropods?", r"crustaceans?", r"mollus[ck]s?", r"arachnids?",
        r"spiders?", r"snakes?", r"lizards?", r"turtles?", r"tortoises?", r"frogs?", r"toads?", r"sharks?",
        r"whales?", r"dolphins?", r"rodents?", r"primates?", r"apes?", r"monkeys?", r"bats?", r"marsupials?",
        r"carnivorans?", r"ungulates?", r"bovids?", r"bovines?", r"cattle", r"horses?", r"dogs?", r"cats?",
        r"felids?", r"canids?", r"canines?", r"deer", r"antelopes?", r"bears?", r"beetles?", r"ants",
        r"bees?", r"wasps?", r"moths?", r"butterfl(?:y|ies)", r"flies", r"worms?", r"invertebrates?",
        r"vertebrates?", r"dinosaurs?", r"theropods?", r"sauropods?", r"breeds?", r"livestock", r"poultry",
        r"seabirds?", r"waterfowl", r"parrots?", r"owls?", r"eagles?", r"passerines?", r"cetaceans?",
        r"echinoderms?", r"cnidarians?", r"jellyfish", r"corals?", r"zoolog\w*", r"feathers?", r"fur",
        r"gills?",
    ),
    "geography": (
        r"countr(?:y|ies)", r"sovereign state", r"microstate", r"nation", r"state in", r"u\.s\. state",
        r"federal state", r"provinces?", r"prefecture", r"county", r"municipality", r"oblast", r"territory",
        r"subregion", r"geographical region", r"geographic region", r"polar region", r"geopolitical region",
        r"cit(?:y|ies)", r"capital", r"towns?", r"metropolis", r"metropolitan area", r"urban area",
        r"continents?", r"subcontinent", r"islands?", r"archipelago", r"peninsula", r"isthmus", r"rivers?",
        r"tributary", r"lakes?", r"salt lake", r"salt water", r"saltwater", r"seas?", r"oceans?", r"bays?",
        r"gulf", r"straits?", r"waterfalls?", r"estuar(?:y|ies)", r"delta", r"body of water",
        r"coast(?:al|line)?", r"mountains?", r"mountain range", r"volcano(?:es)?", r"volcanic", r"hills?",
        r"valleys?", r"canyons?", r"plateaus?", r"plains?", r"deserts?", r"dunes?", r"landforms?",
        r"landmass", r"highlands?", r"lowlands?", r"national park", r"wetlands?", r"swamps?", r"marsh(?:es)?",
        r"geograph\w*", r"cartograph\w*", r"maps?", r"latitude", r"longitude", r"equator", r"hemispheres?",
        r"africa", r"asia", r"europe", r"eurasia", r"americas?", r"oceania", r"antarctic\w*", r"arctic",
        r"pacific", r"atlantic", r"mediterranean", r"caribbean", r"middle east", r"united states",
    ),
    "chemistry": (
        r"chemical elements?", r"atomic number", r"chemical compounds?", r"compounds?", r"molecules?",
        r"atoms?", r"ions?", r"ionic", r"anions?", r"cations?", r"acids?", r"acidic", r"alkal\w*", r"salts?",
        r"oxides?", r"hydroxides?", r"chlorides?", r"sulfates?", r"nitrates?", r"carbonates?",
        r"hydrocarbons?", r"alkanes?", r"alkenes?", r"polymers?", r"esters?", r"ketones?", r"aldehydes?",
        r"alcohols?", r"metalloids?", r"noble gas(?:es)?", r"halogens?", r"lanthanides?", r"actinides?",
        r"periodic table", r"chemical reactions?", r"reactions?", r"reactants?", r"catalys\w*", r"oxidation",
        r"redox", r"chemical bonds?", r"covalent", r"electrons?", r"protons?", r"neutrons?", r"isotopes?",
        r"orbitals?", r"chemistry", r"chemicals?", r"solvents?", r"aqueous", r"ph",
    ),
    "weather": (
        r"weather", r"meteorolog\w*", r"climat\w*", r"atmospher\w*", r"precipitation",
        r"rain(?:s|fall|y|drops?)?", r"snow(?:fall|flakes?|storms?)?", r"hail", r"sleet", r"fog", r"mist",
        r"dew", r"frost", r"clouds?", r"storms?", r"thunderstorms?", r"thunder", r"lightning",
        r"tornado(?:es)?", r"hurricanes?", r"typhoons?", r"cyclones?", r"cyclonic", r"monsoons?", r"winds?",
        r"jet stream", r"air mass(?:es)?", r"air pressure", r"low-pressure", r"high-pressure",
        r"weather fronts?", r"droughts?", r"floods?", r"flooding", r"heat waves?", r"blizzards?", r"humidity",
        r"water vapou?r", r"wet season", r"dry season", r"rainy season", r"temperate seasons", r"ice ages?",
        r"glaciers?", r"glacial ice", r"body of ice", r"ice sheets?", r"ice caps?", r"ice shel(?:f|ves)",
        r"icebergs?", r"sea ice", r"permafrost", r"cryosphere", r"greenhouse effect", r"ozone layer",
        r"el niño", r"rainbows?", r"auroras?", r"forecast\w*", r"ocean currents?", r"ocean circulation",
        r"biomes?", r"ecoregions?", r"layer of gases", r"gas layer", r"frozen water", r"temperature scales?",
        r"units? (?:of|for) temperature", r"movement of air", r"warming",
        r"(?:climatic|global|regional) cooling", r"air currents?", r"air flow", r"anticyclones?",
    ),
    GENERIC: (
        r"(?:a|the|any|other) planets?'s?", r"planet's surface", r"planetary surface",
        r"planetary-mass objects?", r"astronomical (?:body|bodies|object|objects)'?s?", r"on other planets",
        r"earth's surface",
        r"(?:most|many|all|some|other) (?:[\w-]+ )?(?:vertebrates|mammals|animals|tetrapods|primates)",
        r"an animal's?",
    ),
    OTHER: (
        # people
        r"\d{3,4}\s*[–-]\s*\d{2,4}", r"born", r"bc|bce", r"actor", r"actress", r"singer", r"songwriter",
        r"musician", r"composer", r"painter", r"sculptor", r"artist", r"writer", r"poet", r"novelist",
        r"playwright", r"author", r"philosopher", r"politician", r"president", r"prime minister", r"king",
        r"queen", r"emperor", r"empress", r"pharaoh", r"sultan", r"general", r"commander", r"statesman",
        r"leader", r"chemist", r"physicist", r"astronomer", r"mathematician", r"biologist", r"scientist",
        r"inventor", r"explorer", r"saint", r"prophet", r"priest", r"player", r"athlete", r"journalist",
        r"activist", r"economist", r"director", r"businessman", r"engineer", r"astronauts?", r"polymath",
        r"climatologist", r"meteorologist", r"geologist", r"geophysicist", r"geographer", r"cartographer",
        r"naturalist", r"zoologist", r"anatomist", r"physician", r"astrophysicist",
        # creative works
        r"films?", r"novels?", r"albums?", r"songs?", r"painting", r"sculpture", r"statue", r"play", r"poem",
        r"opera", r"ballet", r"book", r"(?:tv|television|book|film|web) series", r"franchise", r"video game",
        r"character", r"band", r"musical instruments?", r"wind instruments?",
        # medicine and the biology of cells and molecules
        r"diseases?", r"disorders?", r"infections?", r"infectious", r"cancers?", r"tumou?rs?", r"malignant",
        r"syndrome", r"injur(?:y|ies)", r"inflammation", r"medical", r"medicine", r"medications?", r"drugs?",
        r"vaccines?", r"therap(?:y|ies)", r"treatments?", r"surgery", r"surgical", r"symptoms?", r"viral",
        r"pathogens?", r"hormones?", r"neurotransmitters?", r"proteins?", r"enzymes?", r"dna", r"rna",
        r"genes?", r"genetic", r"organelles?", r"biolog\w*", r"biochemi\w*", r"biomolecules?", r"metaboli\w*",
        r"living (?:cells?|organisms?)", r"organisms?", r"nucleic", r"amino acids?", r"glucose",
        r"carbohydrates?", r"lipids?", r"sugars?", r"pigments?", r"alcohol consumption", r"pain",
        r"conditions?", r"damage", r"deficienc(?:y|ies)", r"failure", r"death", r"bleeding", r"neoplasms?",
        r"lesions?", r"wounds?", r"trauma", r"fractures?", r"high blood pressure", r"stimulants?",
        r"diagnos\w*", r"clinical", r"healthcare", r"health care", r"hygiene", r"nutrients?", r"arthritis",
        r"loss", r"destruction", r"degeneration", r"infarction", r"reduced", r"abnormal\w*", r"impair\w*",
        r"insufficien\w*", r"laborator\w*", r"prosthe\w*", r"implants?", r"transfusion", r"decay",
        r"restoration", r"examinations?", r"deformation", r"bulge", r"tests?", r"hematoma", r"contusion",
        r"interruption", r"anatomically modern humans?", r"clothing", r"garments?", r"footwear",
        r"cosmetic\w*", r"modification", r"alteration", r"tools?",
        # plants, fungi, microbes, food
        r"plants?", r"flowering", r"trees?", r"shrubs?", r"fruits?", r"vegetables?", r"herbs?", r"spices?",
        r"grass(?:es)?", r"cereal", r"grains?", r"crops?", r"fung(?:i|us|al)", r"mushrooms?", r"algae",
        r"mosses", r"ferns?", r"seeds?", r"flowers?", r"stems?", r"leaves", r"vascular plants?",
        r"photosynth\w*", r"protists?", r"protozoa\w*", r"prokaryot\w*", r"eukaryot\w*", r"microorganisms?",
        r"bacteri\w*", r"virus(?:es)?", r"food", r"dish", r"cuisine", r"culinary", r"meat", r"drinks?",
        r"beverage", r"dairy", r"pork", r"squash(?:es)?",
        # humans as a species, history, belief, society
        r"hominins?", r"hominids?", r"archaic humans?", r"ethnic group", r"city-states?",
        r"(?:ancient|former|historical|historic|medieval|pre-columbian|hellenistic)(?: [\w-]+){0,2}"
        r" (?:city|state|region|capital|country|nation|kingdom|port)s?", r"empire", r"kingdom", r"dynasty",
        r"caliphate", r"principality", r"war", r"battle", r"revolution", r"civilization", r"historical",
        r"centur(?:y|ies)", r"gods?", r"goddess", r"deity", r"mytholog\w*", r"religio\w*", r"church",
        r"temple", r"divination", r"pseudoscien\w*", r"languages?", r"company", r"organi[sz]ation", r"agency",
        r"university", r"sports?", r"game", r"olympic", r"festival", r"celebration", r"clock", r"management",
        r"industry", r"hunting", r"ritual", r"legendary", r"mythical", r"fictional", r"creatures?",
        r"products?", r"trade", r"practices?", r"transport",
        # technology, physics, geology, mathematics
        r"spacecraft", r"space station", r"rockets?", r"launch vehicle", r"spaceflight", r"crewed",
        r"artificial satellites?", r"space program(?:me)?", r"device", r"machine", r"vessel", r"ships?",
        r"aircraft", r"building", r"shelter", r"wind power", r"wind turbines?", r"chemical industry",
        r"chemical weapons?", r"physics", r"physical quantity", r"quantum", r"subatomic",
        r"elementary particles?", r"particle detector", r"energy", r"electric\w*", r"magnet\w*", r"mechanics",
        r"relativity", r"unit of", r"si unit", r"thermodynamic\w*", r"mathemat\w*", r"rocks?", r"minerals?",
        r"geolog\w*", r"tectonic\w*", r"earthquakes?", r"seismic", r"sediment\w*", r"igneous", r"metamorphic",
        r"magma", r"lava",
    ),
}

# Title words: a weak hint (a title says what an article is about, not what kind of thing it is).
TITLE_CUES: dict[str, tuple[str, ...]] = {
    "astronomy": (
        r"\((?:moon|planet|dwarf planet|star|constellation|astronomy)\)", r"galaxy", r"nebula", r"comet",
        r"telescope", r"observatory", r"eclipse", r"constellation", r"supernova", r"cosmic", r"solar system",
    ),
    "anatomy": (
        r"\((?:anatomy|physiology)\)", r"heart", r"lungs?", r"liver", r"kidney", r"brain", r"skull",
        r"skeleton", r"bones?", r"muscles?", r"skin", r"tooth", r"teeth", r"eye", r"ear", r"nose", r"mouth",
        r"tongue", r"hand", r"foot", r"arm", r"leg", r"finger", r"stomach", r"intestine", r"spinal",
        r"pelvis", r"thorax", r"abdomen", r"tendon", r"ligament", r"joint", r"cartilage", r"artery", r"vein",
        r"nerve", r"neuron", r"gland", r"thyroid", r"pancreas", r"bladder", r"uterus", r"ovary", r"testicle",
        r"placenta", r"breast", r"cerebellum", r"cerebrum", r"cortex",
    ),
    "animals": (r"\((?:bird|fish|animal|insect|mammal|genus|zoology)\)",),
    "geography": (
        r"river", r"lake", r"mount", r"mountains", r"sea", r"gulf", r"bay", r"island", r"islands", r"falls",
        r"strait", r"peninsula", r"plateau", r"volcano", r"ocean", r"canyon",
    ),
    "chemistry": (
        r"\((?:element|chemistry)\)", r"acid", r"oxide", r"chloride", r"sulfate", r"electron", r"proton",
        r"neutron", r"atom", r"ion", r"isotope", r"molecule",
    ),
    "weather": (
        r"weather", r"climate", r"cloud", r"storm", r"cyclone", r"tornado", r"hurricane", r"blizzard",
        r"winds?", r"monsoon", r"rain", r"snow", r"hail", r"fog", r"frost", r"dew", r"lightning", r"floods?",
        r"drought", r"season", r"summer", r"winter", r"autumn", r"spring \(season\)", r"atmosphere",
        r"atmospheric", r"meteorology", r"climatology", r"precipitation", r"humidity", r"water vapor",
        r"water cycle", r"jet stream", r"polar vortex", r"pressure area", r"ice age", r"glacier",
        r"ice sheet", r"ice shelf", r"iceberg", r"sea ice", r"permafrost", r"cryosphere", r"^ice$", r"aurora",
        r"rainbow", r"sky", r"temperature", r"celsius", r"fahrenheit", r"kelvin", r"thermometer",
        r"barometer", r"ocean current", r"gulf stream", r"thermohaline circulation",
        r"^(?:desert|tundra|taiga|steppe|savanna|rainforest|tropical rainforest)$",  # the biome, not a place
    ),
    OTHER: (
        r"\((?:film|novel|album|song|band|play|painting|opera|tv series|video game|mythology|god|goddess"
        r"|deity|company|programming language)\)", r"cancer", r"disease", r"disorder", r"syndrome",
        r"infection", r"fracture", r"injury", r"attack", r"failure", r"arrest", r"tumou?r", r"fever",
        r"poisoning", r"inflammation", r"bleeding", r"decay", r"infarction", r"test", r"examination",
        r"transfusion", r"hygiene", r"health", r"therapy", r"surgery", r"medicine",
    ),
}

# Points from the offline corpus's topic field (the Level-4 vital articles' sections); absent elsewhere.
TOPIC_PRIOR: dict[str, dict[str, int]] = {
    "Physical sciences": {"astronomy": 1, "chemistry": 1, "weather": 1, "geography": 1},
    "Biology and health sciences": {"animals": 1, "anatomy": 1},
    "Geography": {"geography": 2},
    "People": {OTHER: 12},
    "Arts": {OTHER: 12},
    "Philosophy and religion": {OTHER: 12},
    "Mathematics": {OTHER: 12},
    "History": {OTHER: 6},
    "Society and social sciences": {OTHER: 12},
    "Technology": {OTHER: 8},
    "Everyday life": {OTHER: 12},
}

DESCRIPTION_WEIGHT, LEAD_WEIGHT, TITLE_WEIGHT = 2, 1, 2
DESCRIPTION_HEAD_BONUS, LEAD_HEAD_BONUS = 4, 2
MIN_SCORE = 3

# Anatomy is human anatomy: a body part defined through animal groups is an animal topic, through plants none.
ANIMAL_BODY = re.compile(r"\b(?:birds?|fish(?:es)?|insects?|arthropods?|crustaceans?|reptiles?|amphibians?"
                         r"|mollus[ck]s?|spiders?|aquatic animals)\b")
PLANT_BODY = re.compile(r"\b(?:plants?|fung(?:i|us)|algae)\b")


def _literal_length(cue: str) -> int:
    """Letters a cue spells out, regex syntax aside: "astronomer" (10) outranks "astronom\\w*" (8)."""
    return len(re.sub(r"\\[a-z]|[^a-z0-9' -]", "", cue))


# Longest cue first: "salt lake" is one geography hit, not a chemistry "salt" plus a lake.
_ORDERED = sorted(((cue, name) for name, cues in CUES.items() for cue in cues),
                  key=lambda item: -_literal_length(item[0]))
_CUE = re.compile(r"\b(?:" + "|".join(cue for cue, _ in _ORDERED) + r")\b")
_FULL = [(re.compile(cue), name) for cue, name in _ORDERED]
_SEED_DOMAIN = {title: domain for domain, titles in SEED_TOPICS.items() for title in titles}
_TITLE_PATTERNS = {name: re.compile(r"\b(?:" + "|".join(cues) + r")\b") for name, cues in TITLE_CUES.items()}
_SENTENCE_END = re.compile(r"(?<=[a-z0-9)\]][.!?])\s+(?=[A-Z\"'(])")
_COPULA = re.compile(r"\b(?:is|are|was|were)\b")
_OF = re.compile(r"\bof\b")
_HEAD_STOP = re.compile(r"[,;:(]|\b(?:in|on|at|from|to|for|with|by|that|which|who|whose|where|between|within"
                        r"|near|beneath|above|below|under|used|found|located|known|consisting|containing"
                        r"|characterized|characterised|producing|dealing|causing|involving|including|such"
                        r"|having|forming|making|living|growing|native)\b")


@functools.cache
def _class_of(hit: str) -> str:
    return next(name for pattern, name in _FULL if pattern.fullmatch(hit))


def _first_sentence(text: str) -> str:
    # capped: a text without sentence punctuation (a local note) must not be read whole
    return _SENTENCE_END.split(text.strip(), maxsplit=1)[0][:400]


def _head_class(text: str, hits: list[re.Match]) -> str | None:
    """The class of the defining noun: the last cue of the first "of"-chunk of the head phrase that has one.

    "skin condition characterized by pimples" -> condition; "inflammation of the brain" -> inflammation;
    "species of bird" -> bird (a chunk without cues, like "species", passes the role on).
    """
    stop = _HEAD_STOP.search(text)
    end = stop.start() if stop else len(text)
    chunk_starts = [m.start() for m in _OF.finditer(text, 0, end)]
    chunks: dict[int, list[re.Match]] = {}
    for hit in hits:
        if hit.start() < end:
            chunks.setdefault(sum(start < hit.start() for start in chunk_starts), []).append(hit)
    return _class_of(chunks[min(chunks)][-1].group(0)) if chunks else None


def _add_hits(scores: dict[str, int], text: str, weight: int, head_bonus: int) -> None:
    """Add ``weight`` per distinct cue, and ``head_bonus`` to the class of the defining noun."""
    hits = list(_CUE.finditer(text))
    for hit in {m.group(0) for m in hits}:
        scores[_class_of(hit)] += weight
    head = _head_class(text, hits)
    if head:
        scores[head] += head_bonus


def scores(title: str, description: str | None, text: str, topic: str | None = None) -> dict[str, int]:
    """Points per class (the six domains and ``other``); ``classify`` picks the winner."""
    result = dict.fromkeys((*DOMAINS, OTHER, GENERIC), 0)
    if description:
        _add_hits(result, description.lower(), DESCRIPTION_WEIGHT, DESCRIPTION_HEAD_BONUS)
    lead = _first_sentence(text).lower()
    copula = _COPULA.search(lead)
    _add_hits(result, lead[copula.end():] if copula else lead, LEAD_WEIGHT, LEAD_HEAD_BONUS)
    for name, pattern in _TITLE_PATTERNS.items():
        if pattern.search(title.lower()):
            result[name] += TITLE_WEIGHT
    for name, points in TOPIC_PRIOR.get(topic or "", {}).items():
        result[name] += points
    del result[GENERIC]
    return result


def classify(title: str, description: str | None, text: str, topic: str | None = None) -> str | None:
    """The article's domain, or None when it belongs to none of the six (or no class clearly wins)."""
    if title in _SEED_DOMAIN:
        return _SEED_DOMAIN[title]
    points = scores(title, description, text, topic)
    ranked = sorted(points.items(), key=lambda item: item[1], reverse=True)
    (best, top), (_, runner_up) = ranked[0], ranked[1]
    if best == OTHER or top < MIN_SCORE or top == runner_up:
        return None
    if best == "anatomy":
        definition = f"{description or ''} {_first_sentence(text)}".lower()
        if PLANT_BODY.search(definition):
            return None
        if ANIMAL_BODY.search(definition):
            return "animals"
    return best
