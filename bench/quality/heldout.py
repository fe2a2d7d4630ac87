"""The held-out set: 12 questions the ranking was never tuned on.

Written after ``rank_pages`` was settled, on subjects the quality set (``questions.py``) does
not touch, in the same format and with the same kinds of distractors (see that docstring), to
check whether its numbers carry over. Lengths and styles vary: a keyword query, an FAQ, a
two-paragraph page, long essays. Do not tune the ranking on it: once it is, it is no longer
held out (``python -m bench.quality --set heldout``).
"""

from __future__ import annotations

from .questions import Question, _q

HELDOUT: list[Question] = [
    _q(
        "why do onions make you cry when you cut them",
        "a volatile irritant that drifts upward",
        (
            "The chemistry behind the chopping board",
            [
                "Almost every cook has stood at the counter, knife in hand, blinking away "
                "tears. Onions are the worst offenders, and few of us can cut one without "
                "paying for it.",
                "The trouble is stored in the bulb in two halves kept apart. Intact cells hold "
                "sulfur-bearing amino acids in one compartment and an enzyme, alliinase, in "
                "another. A blade ruptures the cells, the two meet, and within seconds a second "
                "enzyme turns the products into syn-propanethial-S-oxide, a volatile irritant "
                "that drifts upward. When it reaches the eye it stimulates the nerves of the "
                "cornea, and the tear glands answer by flushing it away.",
                "A very sharp knife crushes fewer cells, and half an hour in the fridge slows "
                "the reaction down. Some cooks swear by leaving the root end for last.",
            ],
        ),
        [
            "Onions have been grown for at least five thousand years. The workers who built "
            "the pyramids were fed on them, and medieval physicians prescribed them for "
            "headaches, snake bites and hair loss.",
            "Today China and India grow more than anyone else, and the average European eats "
            "several kilos a year. Red, white, yellow and shallots each have their fans.",
            "Trainee chefs famously spend whole shifts dicing onions, and many a cooking show "
            "has filmed contestants in tears over a mountain of them. Swimming goggles, a "
            "candle by the board and chewing gum all have their defenders online.",
        ],
        (
            "Cut onions without the tears: why onions make you cry",
            [
                "Why do onions make you cry? Everyone who cuts onions cries, and when you cut "
                "onions you cry more the more onions you cut. Onions make you cry, so cut "
                "onions with our onion chopper!",
                "Our onion chopper cuts onions in seconds. Cry less when you cut onions: cut "
                "them in the chopper, and no more crying when you cut them. Why cry over "
                "onions? Order today.",
            ],
        ),
        (
            "Why do cooked onions taste sweet?",
            [
                "A raw onion bites back: cut it and the sulfur compounds it releases are sharp "
                "on the tongue and sting the nose. Cook it and the same vegetable turns mild, "
                "then sweet.",
                "Heat breaks the pungent sulfur compounds down and drives them off, and the "
                "enzyme that makes them is destroyed. What is left is the onion's sugar, "
                "several per cent of its weight, which browns slowly in the pan into the deep "
                "flavour of caramelised onions.",
            ],
        ),
        (
            "The scene where she cuts onions and cries: an interview",
            [
                "For the kitchen scene the director wanted real tears, so the actress asked "
                "props for a sack of onions and cut them for forty minutes before the cameras "
                "rolled. 'You can't fake that kind of crying,' she says.",
                "The scene, in which she keeps chopping while her mother reads the letter, is "
                "the one critics have quoted most.",
            ],
        ),
    ),
    _q(
        "what does habeas corpus mean",
        "bring that person before a judge and show lawful grounds",
        (
            "The Great Writ",
            [
                "Few legal phrases are quoted as often and explained as rarely as habeas "
                "corpus. It turns up in constitutions, in courtroom dramas and in every debate "
                "about emergency powers.",
                "The Latin says 'that you have the body'. It is an order from a court to "
                "whoever holds a prisoner, a jailer or a minister, to bring that person before "
                "a judge and show lawful grounds for the detention. If no such grounds are "
                "shown, the judge orders the prisoner freed. The writ does not decide guilt; "
                "it tests only whether the imprisonment itself is lawful.",
                "England put the procedure into statute in the Habeas Corpus Act of 1679, and "
                "the United States Constitution allows it to be suspended only in cases of "
                "rebellion or invasion.",
            ],
        ),
        [
            "Habeas corpus is often called a pillar of the common law. Its roots are usually "
            "traced to Magna Carta, and it crossed the Atlantic with the colonists.",
            "In the years after 2001, lawyers for men held at Guantánamo Bay filed petition "
            "after petition, and the Supreme Court's decisions in those cases are still taught "
            "in every law school in the country.",
            "Human rights groups regard it as one of the first freedoms to disappear when a "
            "government decides that the courts are an obstacle.",
        ],
        (
            "Habeas corpus meaning: what does habeas corpus mean?",
            [
                "Looking for what habeas corpus means? Our legal dictionary explains what "
                "habeas corpus means, what corpus means and what every legal term means. "
                "Habeas corpus meaning, habeas corpus definition, habeas corpus in a sentence.",
                "Need a habeas corpus lawyer? Find habeas corpus lawyers near you and get a "
                "free consultation on what habeas corpus means for your case.",
            ],
        ),
        (
            "Can habeas corpus be suspended?",
            [
                "The US Constitution says the privilege of the writ 'shall not be suspended, "
                "unless when in cases of rebellion or invasion the public safety may require "
                "it'. It does not say who may suspend it.",
                "Lincoln suspended it on his own authority in 1861; Chief Justice Taney ruled "
                "that only Congress could, and Congress later passed an act authorising the "
                "suspension for the rest of the war.",
            ],
        ),
        (
            "Habeas Corpus at the Playhouse: a farce about bodies",
            [
                "Alan Bennett's 1973 farce takes its title from the legal phrase and means it "
                "literally: everyone in it is preoccupied with bodies, their own or somebody "
                "else's.",
                "This revival keeps the trousers falling and the vicar's entrances perfectly "
                "timed. It runs until the end of the month.",
            ],
        ),
    ),
    _q(
        "offside rule football explained",
        "closer to their goal line than both the ball and the second-last defender",
        (
            "Where a striker is allowed to stand",
            [
                "Ask ten fans to explain offside and you will hear ten answers, most of them "
                "wrong. Yet the Laws of the Game give it barely a page.",
                "What matters is the moment a team-mate plays the ball. At that instant an "
                "attacker who is in the opponents' half and closer to their goal line than "
                "both the ball and the second-last defender (the goalkeeper is usually the "
                "last) is in an offside position. Level counts as onside, and only the head, "
                "body and feet count: not the arms.",
                "Standing there is not an offence in itself. The referee penalises it only "
                "when the player becomes involved in play, by touching the ball, blocking a "
                "defender's view or profiting from a rebound. There is no offside from a goal "
                "kick, a corner or a throw-in.",
            ],
        ),
        [
            "The offside rule is the most argued-about law in football. Since video "
            "assistant referees arrived, goals have been disallowed by the width of a toenail "
            "and pundits on every channel draw lines across freeze-frames.",
            "Coaches build whole systems around it: the offside trap, in which the back line "
            "steps forward together, was the trademark of several famous defences.",
            "Some fans want it scrapped, others want it changed in the attackers' favour; "
            "the lawmakers have tried both ideas in trials.",
        ],
        (
            "Football rules explained: the offside rule in football",
            [
                "Offside explained! The football offside rule explained simply, for football "
                "fans who want football rules explained. Offside rule, football rule, rules "
                "explained.",
                "Get every football rule explained in our football rules guide: offside, "
                "football, rule, explained. Download the offside rule poster now.",
            ],
        ),
        (
            "Offside in rugby union, and how it differs from football",
            [
                "In rugby a player is offside in open play when in front of a team-mate who "
                "last played the ball: there is no forward pass, so the whole team must stay "
                "behind the ball to take part.",
                "At rucks and mauls the offside line runs through the hindmost foot of the "
                "last player, and defenders who creep past it give away a penalty, the most "
                "common one in the game.",
            ],
        ),
        (
            "Nearside and offside: which side of the car is which?",
            [
                "In British motoring the offside of a vehicle is the side nearest the middle "
                "of the road, the driver's side in the UK; the nearside is the kerb side. The "
                "rule is older than the car: it comes from horse riders, who mounted from the "
                "left.",
                "So when a mechanic's report says 'offside front tyre below legal limit', it "
                "means the right-hand front wheel, whichever way the car is parked.",
            ],
        ),
    ),
    _q(
        "why do we always see the same side of the Moon",
        "turned exactly once on its axis for each trip around us",
        (
            "Locked in step",
            [
                "The face of the Moon, a man to some and a rabbit to others, has looked the "
                "same to every generation that ever looked up.",
                "That is no coincidence. Long ago the Moon spun faster, but Earth's gravity "
                "raised a slight bulge in its rock and tugged on it, braking the spin until "
                "the Moon turned exactly once on its axis for each trip around us. Since then "
                "its day and its orbit both last 27.3 days, and one hemisphere stays facing "
                "Earth. Astronomers call it tidal locking, and most large moons in the solar "
                "system are locked to their planets the same way.",
                "A slight rocking, libration, lets us glimpse 59 per cent of the surface over "
                "time. The far side is not dark: it gets as much sunlight as ours.",
            ],
        ),
        [
            "The Moon's near side is marked by the dark plains called maria, old lava flows "
            "that early astronomers took for seas. The bright highlands between them are "
            "older and heavily cratered.",
            "Nobody saw the other hemisphere until 1959, when the Soviet probe Luna 3 sent "
            "back grainy photographs, and no one landed there until Chang'e 4 in 2019.",
        ],
        (
            "See the Moon: the same side, always",
            [
                "Always see the Moon! See the same side of the Moon in sharp detail with our "
                "telescopes. Why do we see the Moon? Because we always see the same Moon with "
                "the right side of the telescope.",
                "We always see the Moon at its best: the side of the Moon, the same side, "
                "always. Free delivery on all Moon telescopes.",
            ],
        ),
        (
            "Why does the Moon have phases?",
            [
                "Half of the Moon is always lit by the Sun. As it orbits Earth we see "
                "different parts of that sunlit side: all of it at full moon, none of it at "
                "new moon, and half at the quarters.",
                "The cycle from new moon to new moon takes about 29.5 days, longer than the "
                "orbit itself, because Earth moves around the Sun in the meantime.",
            ],
        ),
        (
            "Why we always come back to The Dark Side of the Moon",
            [
                "Pink Floyd's 1973 album spent more than nine hundred weeks on the American "
                "chart. Each generation seems to find it again, on vinyl, on tape, then on "
                "streaming.",
                "Its side one runs without a break from the heartbeat of 'Speak to Me' into "
                "'Breathe', and the prism on the cover is one of the most copied images in "
                "rock.",
            ],
        ),
    ),
    _q(
        "what does DNS do",
        "turns a name people can remember",
        (
            "What happens before the page loads",
            [
                "Every time you open a website, something happens before a single byte of "
                "the page is fetched. Most people never notice it, until it breaks and "
                "nothing loads at all.",
                "Computers on the internet find each other by numeric address, such as "
                "93.184.215.14 or a longer IPv6 one. The Domain Name System is the "
                "distributed directory that turns a name people can remember, like "
                "example.com, into that address. Your device asks a resolver, usually run by "
                "your provider; the resolver asks a root server, which points to the servers "
                "for .com, which point to the servers that hold the answer for example.com.",
                "Answers are cached for as long as their time-to-live says, which is why a "
                "changed record can take hours to reach everyone.",
            ],
        ),
        [
            "'It's always DNS' is a joke among system administrators for a reason. When a "
            "large provider's DNS fails, half the web seems to vanish at once: in 2016 an "
            "attack on one company took Twitter, Netflix and Reddit offline for hours.",
            "Outages since then have been blamed on a mistyped configuration, an expired "
            "certificate and, more than once, a change pushed on a Friday afternoon.",
        ],
        (
            "DNS hosting: what DNS does for you",
            [
                "What does DNS do for your business? DNS does what DNS does best with our "
                "premium DNS hosting. Fast DNS, secure DNS, DNS that does more.",
                "Switch your DNS to us today: what DNS can do, our DNS does, with 100% DNS uptime.",
            ],
        ),
        (
            "How do I change my DNS server?",
            [
                "On Windows, open Network Connections, right-click your adapter, choose "
                "Properties, then Internet Protocol Version 4, and enter a preferred DNS "
                "server such as 1.1.1.1 or 8.8.8.8.",
                "On a Mac it is under System Settings, Network, Details, DNS. Afterwards, "
                "flush the old entries so the change takes effect at once.",
            ],
        ),
        (
            "DNS, DNF, DSQ: what the abbreviations in race results mean",
            [
                "DNS means the athlete did not start: they were entered but never crossed "
                "the start line. DNF means did not finish, and DSQ means disqualified.",
                "What does a DNS do to your ranking? In most series it scores no points, "
                "exactly like a DNF.",
            ],
        ),
    ),
    _q(
        "how aspirin works for pain",
        "permanently disables cyclooxygenase",
        (
            "From willow bark to the pharmacy shelf",
            [
                "Willow bark was chewed for aches and fevers in ancient Sumer and Egypt, and "
                "in 1897 chemists at Bayer made acetylsalicylic acid, a purer and gentler "
                "form of its active ingredient.",
                "It took until 1971 for John Vane to find out how it acts. Injured tissue "
                "makes prostaglandins, messengers that sensitise nerve endings and drive "
                "inflammation and fever. The drug permanently disables cyclooxygenase, the "
                "enzyme that builds them, so fewer are made and the nerves send a weaker "
                "signal.",
                "The same action in platelets, which cannot make new enzyme, is why a small "
                "daily dose thins the blood, and why it can irritate the stomach, whose lining "
                "those messengers protect.",
            ],
        ),
        [
            "Aspirin is one of the most used medicines in the world: by some estimates a "
            "hundred billion tablets are taken every year, for headaches, toothache, period "
            "pain and fever.",
            "Adults usually take 300 to 600 mg every four to six hours, up to 4 g a day. It "
            "should not be given to children under 16 because of the risk of Reye's "
            "syndrome, and people with stomach ulcers should ask a pharmacist first.",
        ],
        (
            "Aspirin for pain: how aspirin works, fast pain relief",
            [
                "Pain? Aspirin works! How aspirin works for pain is simple: aspirin works on "
                "pain, so pain goes. Aspirin for headache pain, back pain and all pain.",
                "Buy aspirin online: works fast for pain, or your money back. How aspirin "
                "works for you: take aspirin, pain works out.",
            ],
        ),
        (
            "Ibuprofen or paracetamol: which is better for pain?",
            [
                "Ibuprofen, like aspirin, is an anti-inflammatory, so it suits pain that "
                "comes with swelling: sprains, toothache, period pain. It is harder on the "
                "stomach and not for everyone with asthma.",
                "Paracetamol works mainly in the brain and spinal cord and does little for "
                "inflammation, but it is gentler and safe in pregnancy. For many pains the "
                "two can be taken together.",
            ],
        ),
        (
            "Aspirin in the garden: does it work for tomatoes?",
            [
                "Gardeners have long dissolved an aspirin tablet in a watering can, claiming "
                "it helps plants shrug off disease and the pain of transplanting.",
                "There is some science behind it: salicylic acid is a plant hormone that "
                "switches on defences. But the dose matters, and too much stunts growth.",
            ],
        ),
    ),
    _q(
        "why did the Titanic sink",
        "she could stay afloat with any four of them flooded",
        (
            "Two hours and forty minutes",
            [
                "On the night of 14 April 1912 the largest ship afloat struck an iceberg in "
                "the North Atlantic. By 2:20 the next morning she was gone, and more than "
                "1,500 people with her.",
                "Her builders had divided the hull into sixteen watertight compartments, and "
                "she could stay afloat with any four of them flooded. The glancing blow along "
                "her starboard bow opened the first five or six. As the bow went down, water "
                "spilled over the tops of the bulkheads, which rose only to E deck, into each "
                "compartment in turn, and no pump could keep up.",
                "Lifeboats for barely half of those aboard, and a ship nearby whose wireless "
                "operator had gone to bed, turned the wreck into a catastrophe.",
            ],
        ),
        [
            "More than a century later the Titanic still fascinates. James Cameron's 1997 "
            "film was for years the highest-grossing ever made, and a replica of the grand "
            "staircase draws crowds in Belfast.",
            "Robert Ballard's team found the wreck in 1985, nearly four kilometres down, in "
            "two pieces. Thousands of objects have been brought up since, from shoes to a "
            "piece of the hull, and their ownership has been argued over in court.",
            "Bacteria are eating the steel, and the wreck may collapse within decades.",
        ],
        (
            "Titanic sinking: why did the Titanic sink? Titanic facts",
            [
                "Why did the Titanic sink? The Titanic sank, and the sinking of the Titanic "
                "is the most famous sinking. Titanic sink facts: the Titanic did sink.",
                "Visit our Titanic sinking exhibition and find out why the Titanic sank. "
                "Titanic tickets, Titanic gifts, Titanic sink.",
            ],
        ),
        (
            "How many people survived the Titanic?",
            [
                "Of about 2,224 people aboard, some 706 survived, picked up by the Carpathia "
                "after hours in the lifeboats.",
                "Class decided much: most women in first class lived, while fewer than half "
                "of the women and children in third class did. Of the crew, about one in four "
                "survived.",
            ],
        ),
        (
            "Why your kitchen sink smells: a titanic problem solved",
            [
                "A smelly sink usually means food and grease caught in the trap or a dry "
                "U-bend letting sewer gas back up.",
                "Pour a cup of baking soda down the sink, then vinegar, wait fifteen minutes "
                "and flush with boiling water. If it still smells, the trap needs taking "
                "apart.",
            ],
        ),
    ),
    _q(
        "why is the Dead Sea so salty",
        "leaves only by evaporation",
        (
            "A lake with no way out",
            [
                "Floating on your back with a newspaper is the classic holiday photograph "
                "from the shores between Jordan and Israel, and the water stings every cut "
                "you did not know you had.",
                "The basin lies more than 430 metres below sea level, the lowest land on "
                "Earth, and nothing flows out of it. The Jordan River and winter floods carry "
                "in dissolved minerals; in the desert heat the water leaves only by "
                "evaporation, and the minerals stay behind. Over thousands of years they have "
                "built up to about 34 per cent, nearly ten times the ocean.",
                "Since the 1960s the water taken from the Jordan for farms and towns has cut "
                "the inflow, and the surface falls by more than a metre a year.",
            ],
        ),
        [
            "The Dead Sea has drawn visitors since Herod built a fortress above it. Today "
            "spa hotels line the Israeli and Jordanian shores, selling mud wraps and "
            "treatments for psoriasis.",
            "Seasoned visitors advise not shaving the day before, keeping the water out of "
            "your eyes at all costs and wearing old swimwear: the mud stains.",
        ],
        (
            "Dead Sea salt: why so salty? Buy Dead Sea salts",
            [
                "Why is the Dead Sea so salty? Because it is the Dead Sea! Our Dead Sea salt "
                "is the saltiest salt from the salty Dead Sea, so salty it is sold out twice "
                "a year.",
                "Dead Sea bath salts, Dead Sea scrub, Dead Sea salt gift sets. Salty, salty "
                "Dead Sea: order now.",
            ],
        ),
        (
            "Why can you float in the Dead Sea?",
            [
                "A body floats when it weighs less than the water it pushes aside. Fresh "
                "water weighs a kilogram a litre; Dead Sea water, thick with dissolved salt, "
                "about 1.24 kilograms.",
                "So a swimmer rides high, a third of the body above the surface, and "
                "swimming on your front is hard: your legs keep rising.",
            ],
        ),
        (
            "The Dead Sea Scrolls: how they survived",
            [
                "In 1947 a Bedouin shepherd threw a stone into a cave near Qumran and heard "
                "pottery break. Inside were the first of the Dead Sea Scrolls, some of them "
                "more than two thousand years old.",
                "The dry, salty air of the Dead Sea basin and the sealed jars kept the "
                "parchment from rotting where anywhere wetter it would have crumbled.",
            ],
        ),
    ),
    _q(
        "what happens to my shares in a stock split",
        "the total value of your holding is the same",
        (
            "Splits: your questions answered",
            [
                "Q: The company I own part of has just announced a 4-for-1 split. Should I be "
                "excited?",
                "A: Not really. You will own four times as many, each priced at a quarter of "
                "what one was the day before, so the total value of your holding is the same. "
                "Ten at $400 ($4,000) become forty at $100 ($4,000).",
                "Q: Why do companies bother, then? A: A lower price looks more affordable to "
                "small investors and employees who are paid in stock, and it can make the "
                "options market in the company more liquid.",
                "Q: Do I have to do anything? A: No. Your broker adjusts the count and the "
                "cost basis by itself, and in most countries no tax is due.",
            ],
        ),
        [
            "Stock splits are back in fashion. Nvidia split its shares ten-for-one in 2024, "
            "following Apple, Amazon, Alphabet and Tesla in the years before.",
            "Studies find that shares often rise after a split is announced, though "
            "economists argue about why, and the effect has weakened as more people buy "
            "fractions of shares through apps.",
        ],
        (
            "Stock split: what happens to shares, my shares, split shares",
            [
                "Stock split? What happens to my shares? Shares split, stocks split, and "
                "what happens to shares in a stock split happens to my shares too.",
                "Trade split shares with zero commission. Split stock, share stock, happens "
                "daily: open an account in minutes.",
            ],
        ),
        (
            "What is a reverse stock split?",
            [
                "In a reverse split a company merges its shares, one new for every ten old, "
                "say. It is usually done to lift the price back over an exchange's minimum, "
                "often one dollar, and avoid being delisted.",
                "Investors tend to read it as a warning: studies find that companies which "
                "reverse-split often keep falling in the following year.",
            ],
        ),
        (
            "Splitting the bills in a shared house: who pays what",
            [
                "When you move into a house share, agree how the bills are split before the "
                "first one arrives. Equal shares are simplest, but the person with the big "
                "room often pays more rent.",
                "If a housemate leaves mid-year, what happens to their share of the deposit "
                "depends on the tenancy: on a joint tenancy you are all liable for the rent "
                "until a replacement signs.",
            ],
        ),
    ),
    _q(
        "why is English spelling so inconsistent",
        "spellings froze on the older sounds",
        (
            "Knight, though and the printers",
            [
                "The same letters make different sounds in 'though', 'through' and 'tough', "
                "and the same sound is written a dozen ways. Children take years longer to "
                "learn to read English than Spanish or Finnish, and adults are still "
                "checking 'necessary' in their forties.",
                "Much of the muddle dates from the fifteenth and sixteenth centuries. "
                "Printing reached England in 1476, and the printers, many of them Flemish, "
                "began to fix the written forms of words just as the spoken language was "
                "changing under them. In what is now called the Great Vowel Shift the long "
                "vowels moved: 'name' had been said like 'nahm', 'bite' like 'beet'. The "
                "spellings froze on the older sounds.",
                "Borrowing added the rest. French gave 'queue', Greek 'psychology', and "
                "scholars inserted letters they thought learned, such as the b in 'debt', "
                "from Latin debitum, which nobody ever pronounced.",
                "Some silent letters were once spoken: the k in 'knight' was still heard in "
                "Chaucer's day.",
            ],
        ),
        [
            "English spelling has frustrated learners for centuries, and reformers for just "
            "as long. Benjamin Franklin designed a new alphabet; George Bernard Shaw left "
            "money in his will for one.",
            "Spelling bees, a peculiarly English-speaking contest, exist because the words "
            "are hard: the national bee in the United States is shown live on television.",
            "Teachers now use phonics schemes that teach the common patterns first and the "
            "'tricky words' by heart.",
        ],
        (
            "Inconsistent English spelling? Spell English so consistently",
            [
                "Is your English spelling inconsistent? Why is English spelling so "
                "inconsistent for you? Our English spelling course makes inconsistent "
                "spelling consistent.",
                "Spelling, English, inconsistent: so many learners struggle with English "
                "spelling. Enrol now and spell English spelling right.",
            ],
        ),
        (
            "Why do Americans and the British spell words differently?",
            [
                "Most of the differences go back to one man, Noah Webster, whose 1828 "
                "dictionary dropped the u in 'colour', turned 'centre' into 'center' and "
                "'defence' into 'defense'.",
                "He wanted spelling closer to speech and an American identity apart from "
                "Britain. His later proposals, such as 'tung' for 'tongue', did not catch on.",
            ],
        ),
        (
            "Why is your ancestor's name spelled five ways?",
            [
                "Family historians soon learn that spelling in old records is inconsistent: "
                "the same man is Smyth at his baptism, Smith at his wedding and Smythe on his "
                "gravestone.",
                "Parish clerks wrote down what they heard, and many of the people they wrote "
                "about could not read the entry to correct it. Search for every variant.",
            ],
        ),
    ),
    _q(
        "how does caffeine keep you awake",
        "sits in those receptors without switching them on",
        (
            "A molecule in the wrong parking space",
            [
                "While you are awake, your neurons burn energy and leave behind adenosine, "
                "which builds up through the day. Receptors on brain cells detect it, and the "
                "more of it they bind, the sleepier you feel.",
                "Coffee's active ingredient is shaped enough like adenosine that it sits in "
                "those receptors without switching them on. With the sensors taken, the "
                "rising pressure to sleep goes unread until the liver clears the drug: half "
                "of it is gone in about five hours.",
            ],
        ),
        [
            "Caffeine is the most widely used psychoactive substance in the world. About "
            "four in five adults take some every day, in coffee, tea, cola or chocolate.",
            "A mug of filter coffee holds around 100 mg, an espresso about 60 and a can of "
            "cola 35. Health authorities consider up to 400 mg a day safe for most adults, "
            "200 mg in pregnancy.",
            "Energy drinks now make up a growing share, especially among students cramming "
            "for exams and shift workers who need to keep going through the night.",
        ],
        (
            "Stay awake with caffeine: keep you awake, keep going",
            [
                "Need caffeine to keep you awake? Our caffeine shots keep you awake, keep you "
                "going and keep you awake longer. How does caffeine keep you awake? With our "
                "caffeine, awake is easy.",
                "Caffeine gum, caffeine mints, caffeine to keep you awake on the road. Stay "
                "awake, stay caffeinated.",
            ],
        ),
        (
            "Will an afternoon coffee keep you awake at night?",
            [
                "Probably more than you think. In one study, people given 400 mg of caffeine "
                "six hours before bed slept more than an hour less, though most of them did "
                "not notice.",
                "Sleep researchers suggest stopping by early afternoon. Some people break "
                "caffeine down slowly because of their genes, and for them even a lunchtime "
                "cup can keep them awake.",
            ],
        ),
        (
            "Ten thrillers that will keep you awake all night",
            [
                "Put the kettle on and cancel tomorrow: these page-turners will keep you awake "
                "long after any coffee wears off.",
                "Our top pick follows a night-shift nurse who notices that the same patient "
                "has been admitted under three names. You will not sleep until you know why.",
            ],
        ),
    ),
    _q(
        "what causes inflation",
        "grows faster than its capacity to produce",
        (
            "Prices, wages and money: an explainer",
            [
                "Inflation is the rate at which the general level of prices rises. The "
                "European Central Bank aims for 2 per cent a year over the medium term, "
                "judging that a little is healthier than none.",
                "Prices rise across the board when spending in an economy grows faster than "
                "its capacity to produce goods and services: when households, firms and the "
                "government together want to buy more than can be made, sellers can charge "
                "more. Economists call this demand-pull. Prices can also be pushed up from the "
                "cost side, when energy or raw materials become dearer, as after the oil "
                "shocks of the 1970s and again in 2022.",
                "Expectations matter too. If workers and firms expect prices to keep rising "
                "they set wages and prices to match, and the expectation fulfils itself.",
                "Central banks respond mainly by raising interest rates, which makes "
                "borrowing dearer and saving more attractive, and so cools spending.",
            ],
        ),
        [
            "Inflation is back in the headlines. Shoppers notice it at the till, renters in "
            "their new leases, and pensioners in what their savings will buy.",
            "Politicians blame each other, and each new monthly figure moves markets within "
            "seconds of its release. Polls put the cost of living at the top of voters' "
            "worries in most European countries.",
        ],
        (
            "Causes of inflation: what causes inflation? Inflation causes",
            [
                "What causes inflation? Inflation is caused by the causes of inflation, and "
                "inflation causes more inflation. Learn what causes inflation in our "
                "inflation course.",
                "Inflation causes, inflation effects, inflation explained: what causes "
                "inflation and what inflation causes, all in one download.",
            ],
        ),
        (
            "How is inflation measured?",
            [
                "Statisticians price a basket of several hundred goods and services each "
                "month, from bread to haircuts to rents, weighted by how much households "
                "spend on each.",
                "The consumer price index compares the basket's cost with a year earlier. "
                "Core measures leave out food and energy, whose prices swing most.",
            ],
        ),
        (
            "What causes tyre pressure to drop in cold weather?",
            [
                "Air contracts as it cools, so a tyre inflated to the right pressure on a "
                "warm afternoon reads low on a frosty morning: roughly 1 psi for every 10 °F.",
                "Check inflation monthly and before long trips, with the tyres cold, and use "
                "the pressure on the sticker inside the driver's door, not the figure on the "
                "tyre wall.",
            ],
        ),
    ),
]
