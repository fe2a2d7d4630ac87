"""The quality set: questions, the page that answers each, and pages that look as if they do.

Written for this project. Per question:

- ``page``: the answering page. Its answer is often said in other words than the question's,
  and the paragraph around it is not the one with most of the query's words (an introduction
  that restates the question usually is): the passage must be picked, not just the page.
- ``title_trap``: a page titled with the question itself that never answers it.
- ``stuffed``: a page that repeats the query's words paragraph after paragraph (search engine
  bait), without the answer.
- ``near``: a page on the same subject answering a neighbouring question.
- ``other``: a page that shares the key words in another sense or another context.

``answer`` is a string of the answering page that a passage holding the answer contains.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Doc:
    title: str
    paragraphs: tuple[str, ...]


@dataclass(frozen=True)
class Question:
    query: str
    answer: str
    page: Doc
    title_trap: Doc
    stuffed: Doc
    near: Doc
    other: Doc

    def candidates(self) -> dict[str, Doc]:
        """Every page of the question by its kind; ``answer`` is the answering page."""
        return {
            "answer": self.page,
            "title_trap": self.title_trap,
            "stuffed": self.stuffed,
            "near": self.near,
            "other": self.other,
        }


def _q(
    query: str,
    answer: str,
    page: tuple[str, list[str]],
    title_trap: list[str],
    stuffed: tuple[str, list[str]],
    near: tuple[str, list[str]],
    other: tuple[str, list[str]],
) -> Question:
    def doc(title: str, paragraphs: list[str]) -> Doc:
        return Doc(title, tuple(paragraphs))

    return Question(
        query,
        answer,
        doc(*page),
        doc(query[:1].upper() + query[1:], title_trap),
        doc(*stuffed),
        doc(*near),
        doc(*other),
    )


QUESTIONS: list[Question] = [
    _q(
        "how do honeybees tell other bees where flowers are",
        "one second of waggling for every kilometre",
        (
            "The language of the hive",
            [
                "People have wondered for centuries how honeybees tell other bees where "
                "flowers are. Beekeepers saw foragers return and, minutes later, dozens of "
                "their sisters head straight for the same field.",
                "Karl von Frisch solved it in the 1940s. A returning forager runs a straight "
                "line on the vertical comb while shaking her abdomen, loops back and repeats. "
                "The angle of that run from straight up matches the angle between the sun and "
                "the food, and its length codes the distance: roughly one second of waggling "
                "for every kilometre of flight.",
                "Nearby food gets a simpler round dance that says only 'search close by', and "
                "the scent on the dancer's body tells the recruits which blossom to look for.",
            ],
        ),
        [
            "Honeybees are among the most social insects on Earth, and a colony can hold "
            "sixty thousand workers at the height of summer. Each has a job that changes as "
            "she ages, from cleaning cells to guarding the entrance.",
            "Flowers, for their part, advertise with colour and ultraviolet patterns that bees "
            "see and we do not. Many plants depend entirely on bees to carry their pollen.",
        ],
        (
            "Bees and flowers: where bees go and what other bees do",
            [
                "Bees love flowers and flowers love bees. Honeybees visit flowers, other bees "
                "visit flowers, and where flowers are, bees are. Tell your friends about bees "
                "and flowers with our bee and flower gift range.",
                "Our honeybee flower seed mix brings bees to your garden: where flowers are "
                "planted, honeybees and other bees will come. Bees tell us our flowers are the "
                "best, and other bees agree!",
            ],
        ),
        (
            "How far do honeybees fly to forage?",
            [
                "A honeybee colony usually forages within about three kilometres of the hive, "
                "but in lean times workers have been tracked flying more than ten kilometres "
                "to reach a good source of nectar.",
                "Longer trips cost more energy and more wear on the wings, so a colony "
                "surrounded by flowers is healthier and stores more honey than one that must "
                "commute.",
            ],
        ),
        (
            "Flower delivery: tell them where your heart is",
            [
                "Send flowers anywhere in the country by tomorrow morning. Our florists tell "
                "you exactly where your bouquet is with live tracking, and a honeybee-friendly "
                "wildflower bunch is part of our spring collection.",
                "Order before 4 pm for next-day delivery. Other bouquets, plants and gift "
                "boxes are available all year round.",
            ],
        ),
    ),
    _q(
        "what causes the tides",
        "pull of the Moon is strongest on the side of the Earth facing it",
        (
            "Two bulges of water",
            [
                "The sea rises and falls along most coasts twice a day, and sailors planned "
                "around that rhythm long before anyone could explain it.",
                "Newton gave the explanation. The gravitational pull of the Moon is strongest "
                "on the side of the Earth facing it and weakest on the far side, so the oceans "
                "are stretched into two bulges; as the planet turns beneath them, a coast "
                "passes through both every day.",
                "The Sun adds a smaller pull. When both line up the range is largest, the "
                "spring tides; at the quarter moons it is smallest, the neap tides.",
            ],
        ),
        [
            "Tides have shaped human life on the coast for millennia. Fishing villages, "
            "harbours and even the timing of battles were planned around high and low water.",
            "Today tide tables are published for every port, and surfers, anglers and "
            "kayakers consult them daily before heading out on the water.",
        ],
        (
            "Tides: what causes the tides and what the tides cause",
            [
                "What causes the tides? The tides are caused by causes. Tides cause high tides "
                "and low tides, and what causes high tides causes low tides too.",
                "Book our tide tour to see what the tides cause on our coast. The tides are "
                "spectacular, and what causes the tides is a question our guides love.",
            ],
        ),
        (
            "Where are the biggest tides in the world?",
            [
                "The Bay of Fundy in eastern Canada has the largest tidal range on the planet: "
                "the water can rise by as much as sixteen metres between low and high tide.",
                "Its funnel shape and a natural period of oscillation close to the tidal period "
                "make it resonate, amplifying what would be a modest tide in the open ocean.",
            ],
        ),
        (
            "Red tides: what causes the harmful algal blooms",
            [
                "A red tide is not a tide at all but a bloom of microscopic algae that can turn "
                "coastal water red or brown and produce toxins harmful to fish and people.",
                "Warm water, calm weather and nutrients washed off farmland all feed the "
                "blooms, which can close shellfish beds for months.",
            ],
        ),
    ),
    _q(
        "why is the sky blue",
        "shorter wavelengths are scattered much more strongly",
        (
            "Rayleigh scattering, simply",
            [
                "Look up on a clear day and the whole dome above you glows blue, while the sun "
                "itself looks white or yellow. The colour comes from the air itself.",
                "Sunlight holds every colour. As it passes through the atmosphere, the "
                "nitrogen and oxygen molecules scatter it, and the shorter wavelengths are "
                "scattered much more strongly than the longer ones, about five times more for "
                "violet than for red. That scattered light reaches our eyes from every "
                "direction, so the sky looks blue; our eyes are less sensitive to violet.",
                "At sunset the light crosses far more air, the blue is scattered away before "
                "it reaches us, and the reds and oranges remain.",
            ],
        ),
        [
            "The blue sky has inspired painters and poets for centuries, from the frescoes of "
            "Giotto to the skies of Constable, who made hundreds of cloud studies.",
            "Photographers prize the deep blue of high altitude, where the air is thin and dry "
            "and the sky can look almost navy at noon.",
        ],
        (
            "Sky blue: why the sky is blue and why blue is the sky",
            [
                "Why is the sky blue? Blue sky, blue skies, sky blue paint. The sky is blue "
                "because blue is the colour of the sky, and sky blue is our bestselling shade.",
                "Paint your bedroom sky blue with our sky blue emulsion. Why is the sky blue? "
                "Ask our blue sky experts in store.",
            ],
        ),
        (
            "Why is the sky on Mars red?",
            [
                "On Mars the daytime sky is a butterscotch colour because fine iron-rich dust "
                "hangs in the thin atmosphere and absorbs blue light.",
                "Curiously, Martian sunsets look blue: the dust scatters blue light forward, "
                "close to the direction of the setting sun.",
            ],
        ),
        (
            "Sky Blue FC: why the club plays in blue",
            [
                "The club has played in sky blue since 1962, when a new manager changed the "
                "kit and gave the team its nickname, the Sky Blues.",
                "The colour is now part of the badge, the stadium seats and the club song that "
                "supporters sing before every home game.",
            ],
        ),
    ),
    _q(
        "how long should I rest a steak after cooking",
        "about five minutes for a thin cut and up to ten for a thick one",
        (
            "Steak, step by step",
            [
                "A good steak needs a hot pan, salt well ahead of time and patience at the end. "
                "Cooking steak is simple, but resting a steak after cooking is the step most "
                "people skip.",
                "Take the meat off the heat a few degrees before your target temperature and "
                "leave it on a warm board, loosely covered. Give it about five minutes for a "
                "thin cut and up to ten for a thick one: the juices settle back into the "
                "fibres instead of running over the board when you slice.",
                "Slice against the grain and serve on warm plates.",
            ],
        ),
        [
            "Steak is one of the simplest luxuries of home cooking. A ribeye is marbled and "
            "forgiving, a sirloin leaner, a fillet tender but mild.",
            "Buy from a butcher who can tell you how long the beef has been aged; dry-aged "
            "beef has a deeper, nutty flavour.",
        ],
        (
            "Rest your steak: steak resting after cooking steak",
            [
                "Steak cooking, steak resting, steak after cooking: how long should you rest "
                "a steak? Rest the steak, cook the steak, then rest the steak after cooking.",
                "Our steak knives make cutting steak after resting and cooking a pleasure. "
                "Shop steak knives, steak plates and steak boards now.",
            ],
        ),
        (
            "How long to cook a steak for each doneness",
            [
                "For a steak about 2.5 cm thick in a very hot pan, cook it two minutes a side "
                "for rare, three for medium rare and four to five for medium.",
                "A thermometer is more reliable than the clock: 52 °C in the centre for rare, "
                "57 °C for medium rare and 63 °C for medium.",
            ],
        ),
        (
            "How long should I rest after a workout?",
            [
                "Most trainers suggest 48 hours of rest for a muscle group after a hard "
                "strength session, while light cardio can be done daily.",
                "Sleep, protein and hydration matter as much as time off: recovery happens "
                "when the body has what it needs to repair.",
            ],
        ),
    ),
    _q(
        "what is the boiling point of water at the top of Mount Everest",
        "around 70 °C",
        (
            "Cooking at altitude",
            [
                "Climbers on the world's highest peaks complain that their food never cooks "
                "properly, and that tea made at camp tastes weak.",
                "Water boils when its vapour pressure equals the pressure of the air above it. "
                "On the summit of Everest, at 8,849 metres, the air pressure is about a third "
                "of that at sea level, so water boils at around 70 °C: hot enough to burn but "
                "not to cook pasta or brew strong tea.",
                "Pressure cookers solve the problem by raising the pressure inside the pot.",
            ],
        ),
        [
            "Mount Everest, on the border of Nepal and China, is the highest mountain on "
            "Earth. It was first climbed in 1953 by Tenzing Norgay and Edmund Hillary.",
            "Hundreds of climbers now reach the top every spring, and the crowding on the "
            "summit ridge has become a danger in itself.",
        ],
        (
            "Boiling point of water: Everest, mountain, top, boiling water",
            [
                "The boiling point of water, the top of Mount Everest, the boiling point at "
                "the top: water boils, Everest is the top, the point is boiling.",
                "Buy our Everest kettle, the top kettle for boiling water at any point of the "
                "day. Mount Everest quality, boiling point performance.",
            ],
        ),
        (
            "How cold is it at the top of Mount Everest?",
            [
                "The average temperature at the summit in January is around −36 °C and can "
                "fall below −60 °C; even in July it rarely rises above −19 °C.",
                "Winds of more than 160 km/h make it feel much colder, which is why most "
                "ascents happen in a short window in May.",
            ],
        ),
        (
            "The freezing point of salt water",
            [
                "Sea water, with about 3.5% salt, freezes at around −1.9 °C, a little below "
                "the freezing point of fresh water.",
                "That is why roads are salted in winter: the brine stays liquid at "
                "temperatures where pure water would turn to ice.",
            ],
        ),
    ),
    _q(
        "how does a vaccine train the immune system",
        "memory cells",
        (
            "Vaccines, explained",
            [
                "Vaccines are among the most effective medicines ever made, and the question "
                "of how a vaccine trains the immune system comes up often.",
                "A vaccine shows the body a harmless piece or copy of a pathogen, such as a "
                "protein from its surface. B cells learn to make antibodies that fit it, and "
                "some of them, together with T cells, stay on as long-lived memory cells that "
                "recognise the real germ later and respond within days instead of weeks.",
                "Boosters remind those cells and raise antibody levels again.",
            ],
        ),
        [
            "The immune system is a network of organs, cells and proteins that defends the "
            "body, from the skin to the lymph nodes and the bone marrow.",
            "Vaccination campaigns eradicated smallpox in 1980 and have brought polio close to "
            "eradication.",
        ],
        (
            "Immune system training: vaccine immune system trains",
            [
                "Train your immune system! Our immune system training programme trains the "
                "immune system like a vaccine trains the immune system.",
                "Immune vaccine training system: how does a vaccine train? How does the "
                "immune system train? Join the training now.",
            ],
        ),
        (
            "What are the side effects of vaccines?",
            [
                "Most side effects are mild and pass within a day or two: a sore arm, tiredness, "
                "a headache or a low fever.",
                "Serious reactions such as anaphylaxis are rare, about one per million doses, "
                "and vaccination centres are equipped to treat them at once.",
            ],
        ),
        (
            "How to train your dog to come back",
            [
                "Start indoors with a long line and a treat the dog loves. Say the recall word "
                "once, reward instantly when it arrives, and practise in short sessions.",
                "Never call the dog to punish it: the recall word must always mean something good.",
            ],
        ),
    ),
    _q(
        "who invented the telephone",
        "Alexander Graham Bell received the patent",
        (
            "The race to the telephone",
            [
                "Several inventors were working on ways to send the human voice over a wire in "
                "the 1870s, and the story of who came first is still argued about.",
                "On 7 March 1876 Alexander Graham Bell received the patent for a device that "
                "transmitted speech electrically, hours after Elisha Gray filed a caveat for a "
                "similar design. Antonio Meucci had demonstrated a voice device years earlier "
                "but could not afford to keep his caveat in force.",
                "Bell's first words over the line were to his assistant: 'Mr Watson, come "
                "here, I want to see you.'",
            ],
        ),
        [
            "The telephone changed the world within a generation: by 1900 there were more than "
            "a million telephones in the United States alone.",
            "Switchboards employed armies of operators, most of them young women, until "
            "automatic exchanges replaced them.",
        ],
        (
            "Telephone inventor: who invented the telephone? Invented telephones",
            [
                "Who invented the telephone? The telephone was invented by the inventor of the "
                "telephone. Telephones were invented, and inventors invented them.",
                "Compare telephone deals from every network. Who invented the best telephone "
                "contract? We did.",
            ],
        ),
        (
            "Who invented the mobile phone?",
            [
                "Martin Cooper of Motorola made the first handheld mobile phone call on "
                "3 April 1973, on a New York street, to a rival at Bell Labs.",
                "The phone weighed about a kilogram and its battery gave thirty minutes of "
                "talk after ten hours of charging.",
            ],
        ),
        (
            "The telephone game: a party classic",
            [
                "In the telephone game, players sit in a line and whisper a phrase from one "
                "to the next; the last player says aloud what reached them.",
                "The fun is in how much the message changes along the way.",
            ],
        ),
    ),
    _q(
        "how much water should an adult drink per day",
        "about 2.7 litres a day for women and 3.7 for men",
        (
            "Hydration without the myths",
            [
                "You will often hear that everyone must drink eight glasses of water, but the "
                "science is less tidy than the slogan.",
                "The US National Academies put a healthy total intake at about 2.7 litres a "
                "day for women and 3.7 for men, counting every drink and the water in food, "
                "which supplies around a fifth of it. Heat, exercise and illness raise the "
                "need.",
                "Pale yellow urine and rarely feeling thirsty are good signs that you are "
                "getting enough.",
            ],
        ),
        [
            "Water makes up about 60 per cent of an adult's body weight and takes part in "
            "nearly every process in it, from digestion to temperature control.",
            "Tap water in most of Europe and North America is safe and cheaper than bottled.",
        ],
        (
            "Drink water per day: how much water should adults drink",
            [
                "Water per day, drink per day, adult water: how much water should an adult "
                "drink? Drink water. Adults drink water per day.",
                "Our smart water bottle tracks how much water you drink per day. Every adult "
                "should drink water with our bottle.",
            ],
        ),
        (
            "Can you drink too much water?",
            [
                "Yes: drinking several litres in a short time can dilute the sodium in the "
                "blood, a dangerous condition called hyponatraemia.",
                "Marathon runners who drink at every station without sweating much are among "
                "those most at risk.",
            ],
        ),
        (
            "How much water does a lawn need per week?",
            [
                "Most lawns need about 2.5 centimetres of water a week, from rain or "
                "sprinklers, applied in one or two deep soakings.",
                "Watering early in the morning loses less to evaporation.",
            ],
        ),
    ),
    _q(
        "what does the Python GIL do",
        "only one thread executes Python bytecode at a time",
        (
            "Threads in CPython",
            [
                "If you have ever tried to speed up a CPU-heavy Python program with threads and "
                "watched it get no faster, the Python GIL is why.",
                "CPython protects its internals, such as reference counts, with a single "
                "global interpreter lock. A thread must hold it to run, so only one thread "
                "executes Python bytecode at a time, even on a machine with many cores; the "
                "lock is released during blocking I/O and by many C extensions.",
                "Python 3.13 added an experimental build without the lock.",
            ],
        ),
        [
            "Python is one of the most popular programming languages, loved for its "
            "readability and its huge ecosystem of libraries.",
            "It is used for web development, data science, automation and teaching.",
        ],
        (
            "Python GIL: what the GIL does in Python, GIL Python",
            [
                "Python GIL, GIL Python, what does the GIL do? The Python GIL does what the "
                "GIL does. Learn Python GIL with our Python GIL course.",
                "The GIL in Python: Python does GIL, GIL does Python. Enrol in Python now.",
            ],
        ),
        (
            "How to use multiprocessing in Python",
            [
                "The multiprocessing module starts separate processes, each with its own "
                "interpreter, so CPU-bound work can use every core.",
                "A Pool maps a function over inputs; data is pickled between processes, which "
                "costs time for large objects.",
            ],
        ),
        (
            "Ball pythons: what do they eat?",
            [
                "A ball python eats one appropriately sized rodent every one to two weeks, "
                "less often as an adult.",
                "They are shy snakes that curl into a ball when frightened, hence the name.",
            ],
        ),
    ),
    _q(
        "when did the Berlin Wall fall",
        "night of 9 November 1989",
        (
            "The night the border opened",
            [
                "For twenty-eight years a concrete barrier divided Berlin, and for many it "
                "seemed the wall would stand for generations.",
                "On the night of 9 November 1989, after a confused announcement by the East "
                "German spokesman Günter Schabowski, crowds gathered at the checkpoints. The "
                "guards, without orders, opened the gates, and Berliners climbed onto the "
                "wall and began to chip at it.",
                "Germany was reunified less than a year later, on 3 October 1990.",
            ],
        ),
        [
            "The Berlin Wall was built by East Germany beginning in August 1961 and grew into "
            "a system of walls, fences and a guarded death strip.",
            "At least 140 people were killed trying to cross it.",
        ],
        (
            "Berlin Wall fall: when the wall fell in Berlin",
            [
                "When did the Berlin Wall fall? The wall fell. The Berlin Wall fall tour shows "
                "you where the wall fell and when Berlin fell for the wall.",
                "Book the Berlin Wall fall experience: wall, fall, Berlin, when.",
            ],
        ),
        (
            "When was the Berlin Wall built?",
            [
                "Construction began overnight on 13 August 1961, when East German troops and "
                "workers closed the border with barbed wire.",
                "Concrete walls followed in the days and years after.",
            ],
        ),
        (
            "Fall in Berlin: autumn events guide",
            [
                "Autumn in Berlin brings the Festival of Lights in October, when landmarks "
                "such as the Brandenburg Gate are lit with projections.",
                "The wall paintings of the East Side Gallery are a popular walk in the fall.",
            ],
        ),
    ),
    _q(
        "how does a heat pump heat a house in winter",
        "evaporates at a very low temperature",
        (
            "Warmth from cold air",
            [
                "It sounds impossible that a machine could heat a house in winter by taking "
                "heat from freezing air, but that is what a heat pump does.",
                "Outside, a fan blows air over a coil full of refrigerant that evaporates at a "
                "very low temperature, so even air at −10 °C warms it. A compressor then "
                "squeezes the vapour, which raises its temperature far above that of the room, "
                "and indoors it condenses and gives that heat to water or air.",
                "Each unit of electricity moves three or more units of heat.",
            ],
        ),
        [
            "Heat pumps are being installed in record numbers across Europe, helped by "
            "subsidies and high gas prices.",
            "A typical installation for a house costs between 8,000 and 15,000 euros.",
        ],
        (
            "Heat pump heat: house heating with heat pumps in winter",
            [
                "Heat pump, heat your house, house heat pump winter: how does a heat pump heat "
                "a house? With heat. Heat pumps heat houses in winter.",
                "Get three heat pump quotes for your house today. Winter heat pump deals.",
            ],
        ),
        (
            "Are heat pumps noisy?",
            [
                "A modern outdoor unit makes about 40 to 60 decibels at one metre, similar to "
                "a fridge or a quiet conversation.",
                "Placing it away from bedroom windows and on anti-vibration feet helps.",
            ],
        ),
        (
            "Winter house maintenance checklist",
            [
                "Bleed the radiators, clear the gutters and check the roof before the first "
                "frost. Insulate exposed pipes to stop them bursting.",
                "Have the boiler serviced every year by a registered engineer.",
            ],
        ),
    ),
    _q(
        "what is the capital of Australia",
        "Canberra",
        (
            "A city built to settle an argument",
            [
                "Many visitors assume that Sydney, the largest and best known city, is the "
                "capital of Australia. It is not, and neither is Melbourne.",
                "When the colonies federated in 1901, both cities wanted the title. The "
                "compromise was a new city between them: Canberra, chosen in 1908 and designed "
                "by the American architects Walter Burley Griffin and Marion Mahony Griffin. "
                "Parliament has sat there since 1927.",
                "Today about 470,000 people live in the city.",
            ],
        ),
        [
            "Australia is the sixth largest country by area and the only one that covers a "
            "whole continent.",
            "Most of its 27 million people live along the coasts.",
        ],
        (
            "Australia capital: capital of Australia, Australian capital city",
            [
                "Capital of Australia? Australia's capital, capital Australia: the capital of "
                "Australia is a capital city in Australia.",
                "Invest with Australia Capital Partners, the capital specialists of Australia.",
            ],
        ),
        (
            "What is the largest city in Australia?",
            [
                "Sydney is Australia's largest city, with about 5.4 million people, just ahead "
                "of Melbourne.",
                "It is famous for its harbour, its opera house and its beaches.",
            ],
        ),
        (
            "Capital gains tax in Australia",
            [
                "In Australia a capital gain is added to taxable income; assets held for more "
                "than a year get a 50% discount for individuals.",
                "The main residence is usually exempt.",
            ],
        ),
    ),
    _q(
        "how do noise cancelling headphones work",
        "a sound wave that is its exact opposite",
        (
            "Fighting sound with sound",
            [
                "On a plane or a train, noise cancelling headphones can make the drone of the "
                "engines almost vanish. How do they manage it?",
                "Small microphones on the ear cups listen to the sound around you. A chip "
                "computes, thousands of times a second, a sound wave that is its exact "
                "opposite, with peaks where the noise has troughs, and plays it through the "
                "speaker. The two cancel out before they reach your eardrum.",
                "It works best on steady low sounds; sudden voices get through more.",
            ],
        ),
        [
            "Headphones come in three main shapes: in-ear buds, on-ear and over-ear models "
            "that surround the ear.",
            "Wireless models now outsell wired ones in most markets.",
        ],
        (
            "Noise cancelling headphones: how noise cancelling works in headphones",
            [
                "Noise cancelling headphones work! How do noise cancelling headphones work? "
                "They cancel noise. Headphones that work at noise cancelling.",
                "Shop noise cancelling headphones deals: our headphones work, noise cancelled.",
            ],
        ),
        (
            "How long do wireless headphones batteries last?",
            [
                "Most over-ear wireless headphones last 20 to 40 hours on a charge; earbuds "
                "five to eight, with more in the case.",
                "Lithium-ion cells lose capacity after a few hundred cycles.",
            ],
        ),
        (
            "How to cancel a noise complaint",
            [
                "If you filed a noise complaint with the council and the problem is solved, "
                "contact the environmental health team and ask to close the case.",
                "Give the reference number from your first letter.",
            ],
        ),
    ),
    _q(
        "why do leaves change colour in autumn",
        "stop making chlorophyll",
        (
            "The hidden colours of trees",
            [
                "Every autumn, people travel to New England and Japan to see whole hillsides "
                "turn red and gold, and ask why leaves change colour.",
                "As the days shorten, deciduous trees stop making chlorophyll, the green "
                "pigment, and what is left of it breaks down. The yellow and orange "
                "carotenoids that were in the leaf all summer show through, and some trees "
                "also make red anthocyanins in the sugary sap.",
                "A cork-like layer then seals the stalk and the leaf falls.",
            ],
        ),
        [
            "Autumn is the season of harvests, shorter days and cooler nights in the "
            "temperate regions.",
            "Many festivals, from Thanksgiving to the Moon Festival, fall in autumn.",
        ],
        (
            "Autumn leaves colour change: why leaves colour in autumn",
            [
                "Leaves change colour in autumn. Why do leaves change? Autumn colour, leaf "
                "colour, autumn leaves colour change.",
                "Autumn leaves wreaths and colour-change candles in our autumn shop.",
            ],
        ),
        (
            "When do leaves fall in autumn?",
            [
                "In most of northern Europe, leaf fall peaks in late October and early "
                "November, earlier after a dry summer.",
                "Oaks and beeches often keep dead leaves into winter.",
            ],
        ),
        (
            "How to change the colour of your hair at home",
            [
                "Do a strand test 48 hours before, use gloves and apply to dry hair.",
                "Going lighter than two shades usually needs bleach and a salon.",
            ],
        ),
    ),
    _q(
        "how does GPS know where I am",
        "distances to at least four satellites",
        (
            "Position from timing",
            [
                "Your phone shows a blue dot on a map within seconds, wherever you stand.",
                "Each GPS satellite broadcasts its position and the exact time from an atomic "
                "clock. The receiver measures how long each signal took to arrive and so its "
                "distances to at least four satellites; the point where those spheres meet, "
                "with the fourth correcting the receiver's cheap clock, is your location.",
                "Relativity must be corrected for, or errors would grow by kilometres a day.",
            ],
        ),
        [
            "GPS is operated by the US Space Force and was opened to civilian use in the "
            "1980s after a Korean airliner strayed into Soviet airspace.",
            "Europe's Galileo, Russia's GLONASS and China's BeiDou are similar systems.",
        ],
        (
            "GPS where am I: GPS know where I am",
            [
                "Where am I? GPS knows where. How does GPS know where I am? GPS, where, I am, "
                "know. Find where I am with GPS.",
                "Our GPS tracker knows where you are. Buy GPS.",
            ],
        ),
        (
            "How accurate is phone GPS?",
            [
                "Under open sky a smartphone is typically accurate to about five metres; near "
                "tall buildings or under trees errors can grow to tens of metres.",
                "Dual-frequency chips in newer phones do better.",
            ],
        ),
        (
            "Where am I? Signs of a panic attack",
            [
                "During a panic attack some people feel detached, as if they did not know "
                "where they are, with a racing heart and shortness of breath.",
                "Slow breathing and grounding exercises help.",
            ],
        ),
    ),
    _q(
        "what is the difference between a virus and a bacterium",
        "cannot reproduce on their own",
        (
            "Germs are not all alike",
            [
                "Both can make us ill, and both are called germs, so the difference between a "
                "virus and a bacterium is easy to blur.",
                "Bacteria are living single cells with their own machinery: they eat, grow and "
                "divide by themselves, and antibiotics can attack that machinery. Viruses are "
                "far smaller packets of genes in a protein coat; they cannot reproduce on "
                "their own and must hijack a host cell, which is why antibiotics do nothing "
                "against them.",
                "Most bacteria are harmless or useful, such as those in the gut.",
            ],
        ),
        [
            "Infectious diseases have shaped history, from the plague to influenza.",
            "Washing hands remains one of the best ways to avoid catching them.",
        ],
        (
            "Virus vs bacterium: the difference between a virus and bacterium",
            [
                "Virus, bacterium, difference: a virus is a virus and a bacterium is a "
                "bacterium. The difference between a virus and a bacterium is the difference.",
                "Our antibacterial antiviral spray kills every virus and bacterium.",
            ],
        ),
        (
            "How do antibiotics work?",
            [
                "Penicillin stops bacteria building their cell walls; other antibiotics block "
                "their ribosomes or DNA copying.",
                "Using them when not needed breeds resistance.",
            ],
        ),
        (
            "Computer virus removal guide",
            [
                "Disconnect from the internet, boot into safe mode and run a full scan with an "
                "up-to-date antivirus program.",
                "Change your passwords from another device afterwards.",
            ],
        ),
    ),
    _q(
        "how long does it take light from the Sun to reach Earth",
        "about 8 minutes and 20 seconds",
        (
            "Old sunlight",
            [
                "When you look at the Sun (never directly!), you see it as it was a little "
                "while ago, not as it is now.",
                "The Earth is on average 150 million kilometres from the Sun, and light "
                "travels at almost 300,000 kilometres per second, so each ray has been on its "
                "way for about 8 minutes and 20 seconds when it arrives. If the Sun vanished, "
                "we would not know for that long.",
                "Light from the nearest other star takes over four years.",
            ],
        ),
        [
            "The Sun is a middle-aged star about 4.6 billion years old, made mostly of "
            "hydrogen and helium.",
            "It holds 99.8% of the mass of the solar system.",
        ],
        (
            "Sunlight to Earth: light, Sun, Earth, how long",
            [
                "How long does light take? Sun to Earth light, Earth light, Sun light: light "
                "from the Sun reaches Earth. How long? Long.",
                "Light from the Sun, light for your home: solar panels for Earth.",
            ],
        ),
        (
            "How hot is the surface of the Sun?",
            [
                "The visible surface, the photosphere, is about 5,500 °C, while the corona "
                "above it is over a million degrees.",
                "Why the corona is hotter is still debated.",
            ],
        ),
        (
            "How long does it take to reach Earth orbit?",
            [
                "A rocket reaches low Earth orbit in about eight to nine minutes after launch.",
                "Docking with the space station used to take two days; now it can take hours.",
            ],
        ),
    ),
    _q(
        "what does HTTP status 429 mean",
        "sent too many requests in a given amount of time",
        (
            "Rate limits on the web",
            [
                "APIs protect themselves from overload, and the status codes they answer with "
                "tell a client what went wrong.",
                "A 429 Too Many Requests response says the client has sent too many requests "
                "in a given amount of time. The server may add a Retry-After header giving the "
                "seconds, or a date, to wait before trying again, and a polite client backs "
                "off until then.",
                "It is defined in RFC 6585, from 2012.",
            ],
        ),
        [
            "HTTP is the protocol of the web, carrying pages, images and API calls between "
            "clients and servers.",
            "Its status codes are grouped by their first digit: 2xx success, 4xx client "
            "error, 5xx server error.",
        ],
        (
            "HTTP status 429: what 429 means, HTTP 429 status",
            [
                "HTTP status 429 means HTTP status 429. What does 429 mean? It means 429, an "
                "HTTP status. Status 429 HTTP.",
                "Monitor every HTTP status with our uptime service. 429? We see it.",
            ],
        ),
        (
            "What does HTTP 503 Service Unavailable mean?",
            [
                "A 503 says the server cannot handle the request right now, usually because "
                "it is overloaded or down for maintenance.",
                "It is temporary by definition, unlike a 500.",
            ],
        ),
        (
            "Route 429 bus timetable",
            [
                "The 429 runs every twenty minutes from the station to the hospital, with the "
                "last bus at 23:10.",
                "On Sundays it runs hourly.",
            ],
        ),
    ),
    _q(
        "how many bones are in the adult human body",
        "206",
        (
            "The skeleton by the numbers",
            [
                "A baby is born with around 270 bones, many of them small pieces of cartilage "
                "that are still turning to bone.",
                "Over childhood and adolescence several fuse, in the skull, the pelvis and the "
                "base of the spine, so that a grown-up has 206. More than half of them are in "
                "the hands and feet.",
                "The longest is the femur, the smallest the stapes in the ear.",
            ],
        ),
        [
            "Bones are living tissue: they are rebuilt constantly, and an adult skeleton is "
            "replaced about every ten years.",
            "Calcium, vitamin D and exercise keep them strong.",
        ],
        (
            "Bones in the body: adult human bones, how many",
            [
                "How many bones? Human bones, adult bones, body bones. The adult human body "
                "has bones, many bones.",
                "Bone broth for the human body: how many bowls will you have?",
            ],
        ),
        (
            "How many muscles are in the human body?",
            [
                "Counts vary with how muscles are grouped, but most sources give around 600 "
                "skeletal muscles.",
                "The gluteus maximus is the largest.",
            ],
        ),
        (
            "How many bones does a dog have?",
            [
                "A dog has around 319 bones, depending on the length of its tail.",
                "Dogs have no collarbone, which lets their stride lengthen.",
            ],
        ),
    ),
    _q(
        "what temperature kills bacteria in chicken",
        "74 °C",
        (
            "Cooking poultry safely",
            [
                "Undercooked poultry is one of the commonest causes of food poisoning, through "
                "salmonella and campylobacter.",
                "Use a thermometer in the thickest part of the meat, away from the bone. Food "
                "agencies advise cooking until it reads 74 °C (165 °F); at that heat the "
                "harmful organisms die almost instantly. The juices should run clear and no "
                "pink should remain.",
                "Never wash raw chicken: the splashes spread the germs around the sink.",
            ],
        ),
        [
            "Chicken is the most eaten meat in the world, cheap, lean and versatile.",
            "Free-range birds have access to the outdoors; organic ones also eat organic feed.",
        ],
        (
            "Chicken bacteria temperature: kills bacteria in chicken",
            [
                "Bacteria in chicken, chicken bacteria, temperature kills: what temperature "
                "kills bacteria in chicken? A temperature. Kills.",
                "Our chicken is bacteria-checked at every temperature.",
            ],
        ),
        (
            "How long can cooked chicken stay in the fridge?",
            [
                "Cooked chicken keeps three to four days in the fridge below 5 °C.",
                "Cool it within two hours of cooking.",
            ],
        ),
        (
            "What temperature kills bed bugs?",
            [
                "Bed bugs and their eggs die after about 90 minutes at 45 °C, or within "
                "minutes at 50 °C.",
                "A hot dryer cycle of half an hour kills them in clothes.",
            ],
        ),
    ),
    _q(
        "how does a bill become a law in the United States",
        "president signs it",
        (
            "From bill to statute",
            [
                "Thousands of bills are introduced in Congress every session; only a few "
                "hundred become law.",
                "A bill is drafted and introduced in the House or the Senate, studied in "
                "committee and debated. If both chambers pass the same text, it goes to the "
                "White House, and it becomes law when the president signs it, or after ten "
                "days without a signature while Congress is in session. A veto can be "
                "overridden by two thirds of both chambers.",
                "Most bills die in committee.",
            ],
        ),
        [
            "The United States Congress has two chambers: the House of Representatives, with "
            "435 members, and the Senate, with 100.",
            "The Capitol building in Washington houses both.",
        ],
        (
            "Bill law: how a bill becomes a law, United States law bill",
            [
                "A bill becomes a law. How does a bill become a law? The bill, the law, the "
                "United States. Law bill, bill law.",
                "Pay your bills with United States Law Bill Pay.",
            ],
        ),
        (
            "How does a constitutional amendment pass?",
            [
                "An amendment needs two thirds of both chambers of Congress and then "
                "ratification by three quarters of the states.",
                "Only 27 amendments have been ratified.",
            ],
        ),
        (
            "How to read your electricity bill",
            [
                "Your bill shows the meter readings, the units used and the unit rate, plus a "
                "daily standing charge.",
                "Estimated readings are marked with an E.",
            ],
        ),
    ),
    _q(
        "why do cats purr",
        "also purr when injured or giving birth",
        (
            "The mystery of the purr",
            [
                "Most people think a purring cat is a happy cat, and often it is.",
                "But cats also purr when injured or giving birth, and even close to death, so "
                "the sound seems to soothe as well as signal contentment. Kittens purr to tell "
                "their mother they are feeding well. Some researchers suggest the vibration, "
                "at 25 to 150 hertz, may help bones and tissues heal.",
                "The sound comes from rapid twitching of the muscles of the larynx.",
            ],
        ),
        [
            "Cats were domesticated about 10,000 years ago in the Near East, probably drawn "
            "to the mice of early farms.",
            "There are more than 70 recognised breeds.",
        ],
        (
            "Cats purr: why cats purr, purring cats",
            [
                "Why do cats purr? Cats purr. Purring cats purr because cats purr. Purr, cat, "
                "purr.",
                "Shop our purring cat toy: it purrs like real cats purr.",
            ],
        ),
        (
            "Why do cats knead?",
            [
                "Kneading starts in kittenhood, when pressing the mother's belly brings milk.",
                "Adults knead soft blankets when relaxed, and scent glands in the paws mark "
                "the spot.",
            ],
        ),
        (
            "Caterpillar machines: why the Cat engine purrs",
            [
                "The Cat C15 diesel engine is known for its low, steady note at idle.",
                "Fleet owners choose it for its durability over a million miles.",
            ],
        ),
    ),
    _q(
        "how does a blockchain prevent double spending",
        "every node checks that the coins have not already been spent",
        (
            "A ledger everyone keeps",
            [
                "Digital money has an obvious weakness: a file can be copied, so what stops "
                "someone spending the same coin twice?",
                "In Bitcoin, every transaction is broadcast to the network, and every node "
                "checks that the coins have not already been spent before relaying it. Miners "
                "bundle valid transactions into blocks chained by hashes, and once a block is "
                "buried under several more, rewriting it would need more computing power than "
                "the rest of the network.",
                "Merchants therefore wait for a few confirmations on large payments.",
            ],
        ),
        [
            "Blockchains are shared databases that no single party controls, first used by "
            "Bitcoin in 2009.",
            "They are now used for cryptocurrencies, supply chains and digital art.",
        ],
        (
            "Blockchain double spending: prevent double spending with blockchain",
            [
                "Double spending? Blockchain prevents double spending. How does blockchain "
                "prevent double spending? Blockchain, double, spending, prevent.",
                "Invest in our blockchain fund and double your spending power.",
            ],
        ),
        (
            "How much energy does Bitcoin mining use?",
            [
                "Estimates put Bitcoin's consumption at over 100 terawatt-hours a year, "
                "comparable to a mid-sized country.",
                "Miners seek cheap power, often hydro or surplus gas.",
            ],
        ),
        (
            "How to stop overspending: a budget guide",
            [
                "Track every expense for a month, set limits by category and pay yourself "
                "first into savings.",
                "Cash envelopes help some people spend less.",
            ],
        ),
    ),
    _q(
        "what is the speed of sound in air",
        "343 metres per second",
        (
            "How fast sound travels",
            [
                "Count the seconds between a lightning flash and its thunder and you can tell "
                "how far away the storm is.",
                "At 20 °C, sound moves through dry air at about 343 metres per second, some "
                "1,235 km/h, roughly a kilometre every three seconds. It goes faster in warm "
                "air and much faster in water and steel.",
                "An aircraft faster than that is supersonic and drags a shock wave behind it.",
            ],
        ),
        [
            "Sound is a pressure wave: molecules push on their neighbours, which push on theirs.",
            "Human ears hear from about 20 hertz to 20,000 hertz.",
        ],
        (
            "Speed of sound air: sound speed in air, air sound",
            [
                "Speed of sound, sound in air, air speed: what is the speed of sound in air? "
                "Sound speed. Air.",
                "Sound of Speed, the racing game: hear the air at full speed.",
            ],
        ),
        (
            "What is the speed of light?",
            [
                "Light in a vacuum travels at exactly 299,792,458 metres per second.",
                "In glass it is about a third slower, which is why lenses bend it.",
            ],
        ),
        (
            "Air fryer speed guide: cooking times",
            [
                "Fries take 15 to 20 minutes at 200 °C; chicken wings about 25.",
                "Shake the basket halfway for even results.",
            ],
        ),
    ),
    _q(
        "how do I undo the last git commit",
        "git reset --soft HEAD~1",
        (
            "Fixing mistakes in git",
            [
                "Everyone commits the wrong thing sometimes: a file too many, a message with "
                "a typo, or the work meant for another branch.",
                "If you have not pushed yet, git reset --soft HEAD~1 moves the branch back one "
                "step and keeps your changes staged, ready to commit again. Use --hard instead "
                "to throw the changes away. If the commit is already shared, make a new commit "
                "that reverses it with git revert.",
                "git reflog finds lost commits afterwards.",
            ],
        ),
        [
            "Git is the version control system used by almost every software project, "
            "created by Linus Torvalds in 2005.",
            "Commits record snapshots of a project with a message and an author.",
        ],
        (
            "Undo git commit: last commit undo, git undo",
            [
                "Undo the last git commit! Git undo, commit undo, last commit. How do I undo "
                "the last git commit? Undo it.",
                "Our git course teaches undo, commit and last.",
            ],
        ),
        (
            "How do I change the last git commit message?",
            [
                "Run git commit --amend and edit the message in the editor that opens.",
                "If already pushed, you will need to force push, which rewrites history.",
            ],
        ),
        (
            "Undo in Photoshop: the history panel",
            [
                "Ctrl+Z undoes the last step; Ctrl+Alt+Z steps further back.",
                "The History panel lists every step and lets you jump back to any of them.",
            ],
        ),
    ),
    _q(
        "what causes northern lights",
        "charged particles from the Sun",
        (
            "Curtains of light in the polar sky",
            [
                "Travellers head to Norway, Iceland and Canada in winter hoping to see the "
                "northern lights dance overhead.",
                "The glow begins with charged particles from the Sun, carried by the solar "
                "wind. The Earth's magnetic field steers them towards the poles, where they "
                "collide with oxygen and nitrogen high in the atmosphere and make them give "
                "off light: green and red from oxygen, blue and purple from nitrogen.",
                "Strong solar storms push the displays far south.",
            ],
        ),
        [
            "The northern lights, or aurora borealis, are best seen between September and "
            "March, on clear dark nights.",
            "Tromsø, Abisko and Fairbanks are popular viewing spots.",
        ],
        (
            "Northern lights causes: what causes the northern lights",
            [
                "Northern lights! What causes northern lights? Lights in the north, causes, "
                "northern. The northern lights cause wonder.",
                "Book our northern lights cause-and-effect cruise.",
            ],
        ),
        (
            "When is the best time to see the northern lights?",
            [
                "The darkest months, with nights between 10 pm and 2 am the most active, "
                "away from city lights.",
                "Check the aurora forecast and cloud cover before heading out.",
            ],
        ),
        (
            "Northern Lights string lights: installation guide",
            [
                "Connect the plug to an outdoor socket with a residual current device.",
                "Clip the lights to gutters every 30 cm for an even line.",
            ],
        ),
    ),
    _q(
        "how does compound interest work",
        "interest is added to the balance and then earns interest itself",
        (
            "Money that grows on itself",
            [
                "Einstein is often, probably wrongly, quoted as calling compound interest the "
                "eighth wonder of the world.",
                "With simple interest you earn only on what you put in. With compounding, each "
                "period's interest is added to the balance and then earns interest itself, so "
                "the growth speeds up: 1,000 at 5% a year becomes about 1,629 after ten years "
                "rather than 1,500.",
                "The rule of 72 says money doubles in about 72 divided by the rate years.",
            ],
        ),
        [
            "Banks offer savings accounts, fixed-term deposits and bonds, each with its own rate.",
            "Central banks set the base rate that most others follow.",
        ],
        (
            "Compound interest: how compound interest works",
            [
                "Compound interest works! How does compound interest work? Interest compounds. "
                "Compound, interest, work.",
                "Open a compound interest account that works for you.",
            ],
        ),
        (
            "What is APR on a credit card?",
            [
                "APR is the yearly cost of borrowing, including interest and some fees.",
                "Paying the full balance each month avoids interest altogether.",
            ],
        ),
        (
            "Compound words in English",
            [
                "A compound word joins two words into one meaning: sunflower, toothbrush.",
                "Some are written with a hyphen or as two words, such as ice cream.",
            ],
        ),
    ),
    _q(
        "why does ice float on water",
        "less dense than liquid water",
        (
            "An odd property of a common liquid",
            [
                "Most substances are denser as solids than as liquids, so a solid block sinks "
                "in its own melt. Water is the striking exception.",
                "When water freezes, hydrogen bonds lock its molecules into an open hexagonal "
                "lattice that holds them further apart than in the liquid. The ice is about 9% "
                "less dense than liquid water, so it floats, and lakes freeze from the top "
                "down, sheltering the life below.",
                "Water is densest at about 4 °C.",
            ],
        ),
        [
            "Ice covers about a tenth of the Earth's land, mostly in Antarctica and Greenland.",
            "Sea ice waxes and wanes with the seasons.",
        ],
        (
            "Ice float water: why ice floats on water",
            [
                "Ice floats on water. Why does ice float? Water ice float, floating ice on "
                "water. Ice, water, float.",
                "Our pool floats float on water like ice.",
            ],
        ),
        (
            "How much of an iceberg is under water?",
            [
                "About nine tenths of an iceberg's mass lies below the surface.",
                "That is why ships keep a wide berth around even small bergs.",
            ],
        ),
        (
            "Ice hockey rules explained",
            [
                "Each team has six players on the ice; a game has three periods of twenty minutes.",
                "Offside is called when an attacker enters the zone before the puck.",
            ],
        ),
    ),
    _q(
        "how do solar panels make electricity",
        "knock electrons loose",
        (
            "From sunlight to current",
            [
                "Rooftop solar panels are now a common sight, and the price of them has "
                "fallen by about 90% in a decade.",
                "Each cell is a thin wafer of silicon with two layers doped differently, which "
                "creates an electric field at their junction. Photons of sunlight knock "
                "electrons loose from the silicon atoms, the field pushes them one way, and "
                "they flow through the circuit as direct current; an inverter turns it into "
                "the alternating current of the home.",
                "Typical panels convert about 20% of the light.",
            ],
        ),
        [
            "Solar power is the fastest growing source of electricity in the world.",
            "China makes most of the world's panels.",
        ],
        (
            "Solar panels electricity: how solar panels make electricity",
            [
                "Solar panels make electricity! How do solar panels make electricity? Solar, "
                "panels, electricity, make.",
                "Get solar panels and make electricity bills vanish.",
            ],
        ),
        (
            "How long do solar panels last?",
            [
                "Most panels are guaranteed for 25 years and lose about half a percent of "
                "output a year.",
                "Inverters usually need replacing after ten to fifteen years.",
            ],
        ),
        (
            "Solar system panels for classrooms",
            [
                "Our illustrated solar system panels show the planets to scale along a "
                "classroom wall.",
                "Each panel has facts about a planet's moons and size.",
            ],
        ),
    ),
    _q(
        "how many hours of sleep does a teenager need",
        "8 to 10 hours",
        (
            "Sleep in the teenage years",
            [
                "Parents often despair at teenagers who stay up late and cannot be woken in "
                "the morning.",
                "The body clock shifts later in puberty, so falling asleep before 11 pm is "
                "genuinely hard. Sleep experts recommend 8 to 10 hours a night for those aged "
                "13 to 18, yet most get around seven on school nights.",
                "Later school start times have improved attendance where they were tried.",
            ],
        ),
        [
            "Adolescence is a time of rapid change in the body and brain.",
            "Screens, homework and social lives all compete for a teenager's evening.",
        ],
        (
            "Teenager sleep hours: how many hours of sleep teenagers need",
            [
                "Sleep, teenager, hours: how many hours of sleep does a teenager need? Hours. "
                "Teenagers need sleep hours.",
                "Our teenager mattress gives more hours of sleep.",
            ],
        ),
        (
            "How many hours of sleep does a baby need?",
            [
                "Newborns sleep 14 to 17 hours a day in short stretches.",
                "By one year most sleep 12 to 15 hours including naps.",
            ],
        ),
        (
            "Teenager's bedroom makeover ideas",
            [
                "A loft bed frees floor space for a desk; fairy lights and a rug add warmth.",
                "Let them choose the colours.",
            ],
        ),
    ),
    _q(
        "what is the tallest building in the world",
        "Burj Khalifa",
        (
            "Reaching for the clouds",
            [
                "Skyscrapers have competed for height for more than a century, from the "
                "Woolworth Building to the Petronas Towers.",
                "Since 2010 the record belongs to the Burj Khalifa in Dubai, at 828 metres "
                "with 163 floors. Its Y-shaped plan cuts the force of the wind on the tower.",
                "Jeddah Tower in Saudi Arabia is planned to pass a kilometre.",
            ],
        ),
        [
            "Tall buildings need deep foundations, fast lifts and strong cores to resist the wind.",
            "Most supertall towers are now in Asia and the Middle East.",
        ],
        (
            "Tallest building world: the world's tallest building",
            [
                "Tallest building! What is the tallest building in the world? The tallest, "
                "the building, the world.",
                "World's tallest building tours: tall, taller, tallest.",
            ],
        ),
        (
            "What is the tallest building in Europe?",
            [
                "The Lakhta Center in Saint Petersburg, at 462 metres, is Europe's tallest.",
                "In the EU the record is held by towers in Warsaw and Frankfurt.",
            ],
        ),
        (
            "Building the world's tallest LEGO tower",
            [
                "Fans in Milan built a tower of more than half a million bricks.",
                "It reached 35 metres before it was checked by the record keepers.",
            ],
        ),
    ),
]
