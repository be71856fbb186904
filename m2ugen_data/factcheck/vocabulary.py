"""The words a text may use for what the analysers measure, mapped to the analysers' own words.

Free text says "e-bass", "a female vocalist", "uptempo", "melancholic"; the analysers measure "drums",
"female vocal", a tempo in BPM, "sad". Each table below maps surface phrases (lowercase, hyphens read as
spaces, a plural "s" optional) to a canonical value, and ``FAMILIES`` says which measured tagger words
speak for a canonical value (a "strings" claim is backed by a measured "violin") and which confident
absences contradict it (a "violin" claim is contradicted only when neither violin nor strings is heard).

The instrument words the tagger measures are those of ``analysis.tag_words.INSTRUMENT_TAGS``; everything
else here ("bass", "trumpet", "percussion") is a value the tagger has no opinion on, so a claim of it is
checked against the segment's labels only (``facts.rules`` says when labels may speak).
"""

from __future__ import annotations

from dataclasses import dataclass

from m2ugen_data.analysis.tag_words import GENRE_TAGS, INSTRUMENT_TAGS, MOOD_TAGS

# canonical instrument -> surface phrases (the canonical word itself always matches)
INSTRUMENTS: dict[str, tuple[str, ...]] = {
    "piano": ("pianos", "grand piano", "upright piano", "piano chords", "pianist"),
    "electric piano": ("e piano", "rhodes", "fender rhodes", "wurlitzer", "electric pianos"),
    "keyboard": ("keyboards", "keys", "keyboard pad", "digital keyboard"),
    "organ": ("organs", "hammond", "hammond organ", "church organ", "pipe organ", "electric organ"),
    "harpsichord": (),
    "guitar": (
        "guitars", "acoustic guitar", "electric guitar", "classical guitar", "steel guitar", "slide guitar",
        "lead guitar", "rhythm guitar", "nylon guitar", "12 string guitar", "guitarist", "guitar riff",
        "guitar solo", "guitar strums", "strumming",
    ),
    "bass": (
        "e bass", "bass guitar", "electric bass", "bassline", "bass line", "basslines", "synth bass",
        "upright bass", "double bass", "acoustic bass", "sub bass", "slap bass", "bassist", "contrabass",
    ),
    "ukulele": ("ukelele", "uke"),
    "banjo": (),
    "mandolin": (),
    "sitar": (),
    "harp": ("harps",),
    "strings": ("string section", "string ensemble", "string instruments", "bowed strings", "orchestral strings"),
    "violin": ("violins", "fiddle", "fiddles", "violinist"),
    "viola": (),
    "cello": ("cellos", "violoncello", "cellist"),
    "flute": ("flutes", "flutist", "piccolo", "pan flute", "bamboo flute"),
    "recorder": (),
    "clarinet": (),
    "oboe": (),
    "bassoon": (),
    "saxophone": ("sax", "saxophones", "saxophonist", "alto sax", "tenor sax", "alto saxophone", "tenor saxophone"),
    "trumpet": ("trumpets", "trumpeter", "cornet", "flugelhorn"),
    "trombone": ("trombones",),
    "tuba": (),
    "horn": ("horns", "french horn", "horn section"),
    "brass": ("brass section", "brass instruments", "brass band"),
    "woodwind": ("woodwinds", "woodwind instruments", "wind instruments"),
    "harmonica": ("blues harp",),
    "accordion": ("accordions", "bandoneon", "concertina"),
    "bagpipes": ("bagpipe",),
    "synth": (
        "synths", "synthesizer", "synthesizers", "synthesiser", "synth pad", "synth pads", "synth lead",
        "lead synth", "synth leads", "pad", "pads", "arpeggiator", "synth arpeggio", "synth chords", "synthpop synth",
    ),
    "drums": (
        "drum", "drum kit", "drumkit", "drumset", "drum set", "drummer", "drumming", "drum beat", "drum loop",
        "drum machine", "electronic drums", "digital drums", "acoustic drums", "kick", "kick drum", "bass drum",
        "snare", "snare drum", "snares", "hi hat", "hi hats", "hihat", "hihats", "cymbal", "cymbals",
        "crash cymbal", "ride cymbal", "toms", "tom", "rimshot", "rim shots", "rimshots", "drum fill", "drum fills",
        "808", "808s", "breakbeat",
    ),
    "percussion": (
        "percussions", "percussive elements", "percussionist", "shaker", "shakers", "tambourine", "tambourines",
        "claps", "hand claps", "handclaps", "clapping", "congas", "conga", "bongos", "bongo", "cowbell",
        "woodblock", "maracas", "djembe", "cajon", "tabla", "tablas", "timpani", "castanets", "triangle",
        "finger snaps", "snaps", "snapping",
    ),
    "bells": ("bell", "chimes", "chime", "glockenspiel", "tubular bells", "church bells", "sleigh bells"),
    "mallets": ("xylophone", "marimba", "vibraphone", "vibes", "kalimba", "steel drum", "steel drums", "steelpan"),
    "orchestra": ("symphony orchestra", "orchestration"),
    "turntables": ("scratching", "turntable", "dj scratches", "scratches"),
}
# voices: canonical -> surface phrases (gender words next to a voice word are read by the extractor)
VOICE_WORDS: tuple[str, ...] = (
    "vocal", "vocals", "vocalist", "vocalists", "voice", "voices", "singer", "singers", "singing", "sings", "sing",
    "sung", "choir", "choirs", "chorus vocals", "backing vocals", "harmonies", "humming", "hums", "rapping", "raps",
    "rapper", "rappers", "rap vocals", "chant", "chants", "chanting", "lyrics", "vocalization", "vocalizing",
    "crooning", "croons", "yodeling", "falsetto", "a cappella", "acapella", "soprano", "tenor voice", "baritone",
)
FEMALE_WORDS: tuple[str, ...] = ("female", "woman", "women", "girl", "girls", "lady", "ladies", "feminine")
MALE_WORDS: tuple[str, ...] = ("male", "man", "men", "boy", "boys", "guy", "masculine")
SPEECH_WORDS: tuple[str, ...] = (
    "speech", "spoken", "speaking", "speaks", "speaker", "talking", "talks", "narration", "narrator", "narrates",
    "dialogue", "spoken word", "voiceover", "voice over", "speaking voice", "spoken voice", "talking voice",
)
# "instrumental" (as an adjective of the whole piece) and these say there is no voice
NO_VOICE_PHRASES: tuple[str, ...] = ("instrumental", "instrumentals", "no vocals", "no voice", "no singing")

# tempo classes and the phrases that name them; ``TEMPO_RANGES`` says which BPM each class admits
TEMPO_WORDS: dict[str, tuple[str, ...]] = {
    "very slow": ("very slow", "extremely slow", "really slow", "super slow", "largo", "grave tempo"),
    "slow": ("slow", "slowly", "slower paced", "slower tempo", "downtempo", "down tempo", "slow paced", "adagio", "lento"),
    "moderate": (
        "medium tempo", "mid tempo", "moderate tempo", "medium paced", "moderately paced", "moderate pace",
        "medium pace", "mid paced", "midtempo", "andante", "moderato", "medium speed", "moderate speed",
        "medium", "moderate",
    ),
    "upbeat": ("upbeat",),  # a tempo word only beside a tempo noun ("an upbeat tempo"); alone it is a mood
    "fast": ("fast", "quick", "rapid", "uptempo", "up tempo", "fast paced", "quick paced", "high tempo", "allegro", "speedy",
             "faster tempo"),
    "very fast": ("very fast", "extremely fast", "really fast", "super fast", "presto", "frantic tempo"),
}
# Admitted BPM per tempo class (lower, upper). Wider than the grounded captioner's buckets
# (facts.measured._TEMPO_WORDS: very slow < 60 <= slow < 80 <= moderate < 105 <= upbeat < 125 <= fast < 150
# <= very fast), because people use these words loosely: a "fast" song at 118 BPM is not a lie, one at 70 is.
TEMPO_RANGES: dict[str, tuple[float, float]] = {
    "very slow": (0.0, 75.0),
    "slow": (0.0, 95.0),
    "moderate": (75.0, 135.0),
    "upbeat": (95.0, 160.0),
    "fast": (110.0, 1000.0),
    "very fast": (135.0, 1000.0),
}
TEMPO_NOUNS: tuple[str, ...] = ("tempo", "tempos", "pace", "paced", "pulse", "bpm", "speed", "groove", "beat", "rhythm")

GENRES: dict[str, tuple[str, ...]] = {
    "rock": ("rock music", "rock song", "classic rock", "hard rock", "soft rock", "alternative rock", "indie rock",
             "grunge", "rock and roll", "rock n roll", "progressive rock", "psychedelic rock", "garage rock"),
    "pop": ("pop music", "pop song", "indie pop", "synthpop", "synth pop", "k pop", "kpop", "j pop", "dance pop"),
    "classical": ("classical music", "baroque", "romantic era", "chamber music", "symphonic", "symphony", "sonata",
                  "concerto", "string quartet"),
    "electronic": ("electronic music", "electronica", "electro", "edm", "electronic dance music", "trance",
                   "dubstep", "drum and bass", "drum n bass", "dnb", "synthwave", "idm", "breakbeat music"),
    "techno": ("techno music", "minimal techno"),
    "house": ("house music", "deep house", "tech house", "progressive house"),
    "ambient": ("ambient music", "soundscape"),
    "dance": ("dance music", "club music", "disco", "eurodance"),
    "country": ("country music", "bluegrass", "americana", "honky tonk"),
    "metal": ("heavy metal", "metal music", "death metal", "black metal", "thrash metal", "metalcore", "nu metal"),
    "jazz": ("jazz music", "jazzy", "swing", "bebop", "big band", "smooth jazz", "bossa nova", "jazz fusion"),
    "blues": ("blues music", "bluesy", "rhythm and blues"),
    "folk": ("folk music", "folk song", "folksy", "traditional folk", "celtic", "irish folk"),
    "funk": ("funky", "funk music"),
    "soul": ("soul music", "soulful", "neo soul"),
    "punk": ("punk rock", "pop punk", "hardcore punk"),
    "hip-hop": ("hip hop", "hiphop", "rap music", "rap song", "trap", "boom bap", "hip hop beat"),
    "r&b": ("rnb", "r and b", "contemporary r&b"),
    "reggae": ("reggae music", "dub", "ska", "dancehall", "reggaeton"),
    "latin": ("latin music", "salsa", "samba", "tango", "cumbia", "flamenco", "mariachi", "bachata", "merengue"),
    "gospel": ("gospel music", "christian music", "worship music", "hymn", "hymns", "praise music"),
    "indian": ("indian music", "indian classical", "bollywood", "carnatic", "hindustani", "bhangra", "raga"),
    "opera": ("operatic", "aria"),
    "new age": ("new age music", "meditation music"),
    "lo-fi": ("lo fi", "lofi", "lo fi hip hop"),
    "orchestral": ("orchestral music", "film score", "cinematic", "epic orchestral"),
    "children's music": ("children's song", "kids music", "nursery rhyme", "lullaby", "lullabies"),
    "world": ("world music", "african music", "arabic music", "middle eastern", "chinese traditional", "japanese traditional"),
}
MOODS: dict[str, tuple[str, ...]] = {
    "mellow": ("mellow",),
    "soft": ("gentle", "tender", "delicate"),
    "chill": ("chilled", "chillout", "chill out", "laid back", "relaxed", "relaxing", "easygoing"),
    "sad": ("melancholic", "melancholy", "sorrowful", "mournful", "somber", "sombre", "depressing", "heartbroken", "gloomy"),
    "happy": ("joyful", "joyous", "cheerful", "cheery", "uplifting", "feel good", "jolly", "merry", "bright and happy"),
    "beautiful": ("lovely", "gorgeous"),
    "catchy": (),
    "calm": ("peaceful", "soothing", "serene", "tranquil", "calming", "meditative"),
    "energetic": ("energetic", "lively", "high energy", "powerful", "driving", "vigorous"),
    "aggressive": ("angry", "fierce", "violent", "harsh"),
    "dark": ("ominous", "sinister", "eerie", "spooky", "creepy", "scary", "haunting"),
    "epic": ("grand", "majestic", "heroic", "triumphant"),
    "dramatic": ("intense", "suspenseful", "tense", "suspense"),
    "romantic": ("romance", "sensual", "sexy", "passionate", "love song"),
    "emotional": ("emotive", "sentimental", "heartfelt", "touching"),
    "playful": ("fun", "funny", "whimsical", "quirky", "silly"),
    "dreamy": ("ethereal", "atmospheric", "hypnotic", "spacey"),
    "groovy": ("grooving",),
    "mysterious": ("mystical", "enigmatic"),
    "nostalgic": ("retro", "wistful"),
    "upbeat": (),  # "upbeat" next to no tempo noun: the cheerful sense
}

# Which measured tagger words back a canonical value, and which must all be confidently absent to contradict it.
# A value missing here is backed by its own tagger word (if the tagger has one) and contradicted by its absence.
@dataclass(frozen=True)
class Family:
    backed_by: frozenset[str]  # measured words any of which supports the claim
    absent_if: frozenset[str]  # measured words that must all be confidently absent to contradict it (empty: never)


FAMILIES: dict[tuple[str, str], Family] = {
    ("instrument", "strings"): Family(frozenset({"strings", "violin", "cello"}), frozenset({"strings", "violin", "cello"})),
    ("instrument", "violin"): Family(frozenset({"violin"}), frozenset({"violin", "strings"})),
    ("instrument", "cello"): Family(frozenset({"cello"}), frozenset({"cello", "strings"})),
    ("instrument", "viola"): Family(frozenset({"strings"}), frozenset()),
    ("instrument", "orchestra"): Family(frozenset({"strings", "violin", "cello"}), frozenset()),
    ("instrument", "keyboard"): Family(frozenset({"piano", "synth", "harpsichord"}), frozenset()),
    ("instrument", "electric piano"): Family(frozenset({"piano"}), frozenset()),
    ("instrument", "percussion"): Family(frozenset({"drums"}), frozenset()),
    ("instrument", "harp"): Family(frozenset({"harp"}), frozenset()),  # MTT's harp tag is too rare to rule out
    ("genre", "electronic"): Family(frozenset({"electronic", "techno", "house", "dance"}), frozenset()),
    ("genre", "dance"): Family(frozenset({"dance", "house", "techno"}), frozenset()),
    ("genre", "metal"): Family(frozenset({"metal"}), frozenset()),
    ("mood", "calm"): Family(frozenset({"mellow", "soft", "chill"}), frozenset()),
    ("mood", "chill"): Family(frozenset({"chill", "mellow"}), frozenset()),
}

TAGGER_WORDS: dict[str, frozenset[str]] = {
    "instrument": frozenset(INSTRUMENT_TAGS),
    "genre": frozenset(GENRE_TAGS),
    "mood": frozenset(MOOD_TAGS),
}


def family(kind: str, value: str) -> Family:
    """What backs a claim of ``value`` and what contradicts it (see ``FAMILIES``)."""
    if (kind, value) in FAMILIES:
        return FAMILIES[(kind, value)]
    own = frozenset({value}) & TAGGER_WORDS.get(kind, frozenset())
    return Family(own, own)


def surface_table(table: dict[str, tuple[str, ...]]) -> dict[str, str]:
    """phrase -> canonical value, the canonical word included, hyphens read as spaces."""
    out: dict[str, str] = {}
    for canon, phrases in table.items():
        for p in (canon, *phrases):
            out.setdefault(p.replace("-", " "), canon)
    return out
