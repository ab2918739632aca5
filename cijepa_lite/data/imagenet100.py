"""Facts about ImageNet-100 (SPEC 6): the Hub source, its pinned revision, its counts and its classes.

The class list is CMC's (Tian et al. 2019, `imagenet100.txt`). The Hub dataset `clane9/imagenet-100`
stores labels as a ClassLabel whose names are the ImageNet synset words, in CMC's order: label k of
the Hub is `CLASSES[k]`. Image folders name their classes by WordNet id, so both are mapped onto
the WordNet ids in this order (`canonical_classes`) and the two pipelines give the same label indices.
"""
from __future__ import annotations

HUB_REPO = "clane9/imagenet-100"
# Pinned commit of HUB_REPO. Taken from public references (projects that pin this dataset, and Hub
# cache paths `datasets--clane9--imagenet-100/snapshots/<sha>`); the Hub is unreachable from where
# this kit was written, so `verify_download` re-checks counts and classes after every download.
HUB_REVISION = "0519dc2f402a3a18c6e57f7913db059215eee25b"
SPLIT_COUNTS = {"train": 126_689, "val": 5_000}
NUM_CLASSES = 100

# (WordNet id, synset words as the Hub's ClassLabel names them), in CMC order = Hub label order.
CLASSES: tuple[tuple[str, str], ...] = (
    ("n02869837", "bonnet, poke bonnet"),
    ("n01749939", "green mamba"),
    ("n02488291", "langur"),
    ("n02107142", "Doberman, Doberman pinscher"),
    ("n13037406", "gyromitra"),
    ("n02091831", "Saluki, gazelle hound"),
    ("n04517823", "vacuum, vacuum cleaner"),
    ("n04589890", "window screen"),
    ("n03062245", "cocktail shaker"),
    ("n01773797", "garden spider, Aranea diademata"),
    ("n01735189", "garter snake, grass snake"),
    ("n07831146", "carbonara"),
    ("n07753275", "pineapple, ananas"),
    ("n03085013", "computer keyboard, keypad"),
    ("n04485082", "tripod"),
    ("n02105505", "komondor"),
    ("n01983481", "American lobster, Northern lobster, Maine lobster, Homarus americanus"),
    ("n02788148", "bannister, banister, balustrade, balusters, handrail"),
    ("n03530642", "honeycomb"),
    ("n04435653", "tile roof"),
    ("n02086910", "papillon"),
    ("n02859443", "boathouse"),
    ("n13040303", "stinkhorn, carrion fungus"),
    ("n03594734", "jean, blue jean, denim"),
    ("n02085620", "Chihuahua"),
    ("n02099849", "Chesapeake Bay retriever"),
    ("n01558993", "robin, American robin, Turdus migratorius"),
    ("n04493381", "tub, vat"),
    ("n02109047", "Great Dane"),
    ("n04111531", "rotisserie"),
    ("n02877765", "bottlecap"),
    ("n04429376", "throne"),
    ("n02009229", "little blue heron, Egretta caerulea"),
    ("n01978455", "rock crab, Cancer irroratus"),
    ("n02106550", "Rottweiler"),
    ("n01820546", "lorikeet"),
    ("n01692333", "Gila monster, Heloderma suspectum"),
    ("n07714571", "head cabbage"),
    ("n02974003", "car wheel"),
    ("n02114855", "coyote, prairie wolf, brush wolf, Canis latrans"),
    ("n03785016", "moped"),
    ("n03764736", "milk can"),
    ("n03775546", "mixing bowl"),
    ("n02087046", "toy terrier"),
    ("n07836838", "chocolate sauce, chocolate syrup"),
    ("n04099969", "rocking chair, rocker"),
    ("n04592741", "wing"),
    ("n03891251", "park bench"),
    ("n02701002", "ambulance"),
    ("n03379051", "football helmet"),
    ("n02259212", "leafhopper"),
    ("n07715103", "cauliflower"),
    ("n03947888", "pirate, pirate ship"),
    ("n04026417", "purse"),
    ("n02326432", "hare"),
    ("n03637318", "lampshade, lamp shade"),
    ("n01980166", "fiddler crab"),
    ("n02113799", "standard poodle"),
    ("n02086240", "Shih-Tzu"),
    ("n03903868", "pedestal, plinth, footstall"),
    ("n02483362", "gibbon, Hylobates lar"),
    ("n04127249", "safety pin"),
    ("n02089973", "English foxhound"),
    ("n03017168", "chime, bell, gong"),
    ("n02093428", "American Staffordshire terrier, Staffordshire terrier, American pit bull terrier, pit bull terrier"),
    ("n02804414", "bassinet"),
    ("n02396427", "wild boar, boar, Sus scrofa"),
    ("n04418357", "theater curtain, theatre curtain"),
    ("n02172182", "dung beetle"),
    ("n01729322", "hognose snake, puff adder, sand viper"),
    ("n02113978", "Mexican hairless"),
    ("n03787032", "mortarboard"),
    ("n02089867", "Walker hound, Walker foxhound"),
    ("n02119022", "red fox, Vulpes vulpes"),
    ("n03777754", "modem"),
    ("n04238763", "slide rule, slipstick"),
    ("n02231487", "walking stick, walkingstick, stick insect"),
    ("n03032252", "cinema, movie theater, movie theatre, movie house, picture palace"),
    ("n02138441", "meerkat, mierkat"),
    ("n02104029", "kuvasz"),
    ("n03837869", "obelisk"),
    ("n03494278", "harmonica, mouth organ, harp, mouth harp"),
    ("n04136333", "sarong"),
    ("n03794056", "mousetrap"),
    ("n03492542", "hard disc, hard disk, fixed disk"),
    ("n02018207", "American coot, marsh hen, mud hen, water hen, Fulica americana"),
    ("n04067472", "reel"),
    ("n03930630", "pickup, pickup truck"),
    ("n03584829", "iron, smoothing iron"),
    ("n02123045", "tabby, tabby cat"),
    ("n04229816", "ski mask"),
    ("n02100583", "vizsla, Hungarian pointer"),
    ("n03642806", "laptop, laptop computer"),
    ("n04336792", "stretcher"),
    ("n03259280", "Dutch oven"),
    ("n02116738", "African hunting dog, hyena dog, Cape hunting dog, Lycaon pictus"),
    ("n02108089", "boxer"),
    ("n03424325", "gasmask, respirator, gas helmet"),
    ("n01855672", "goose"),
    ("n02090622", "borzoi, Russian wolfhound"),
)
WNIDS = tuple(w for w, _ in CLASSES)
NAMES = tuple(n for _, n in CLASSES)


def canonical_classes(classes: list[str]) -> tuple[list[str], list[str], list[int]]:
    """(class ids, readable names, new index of each input class): ImageNet-100 becomes WordNet ids in CMC order.

    Args:
        classes: a dataset's class list (ClassLabel names, folder names or string labels).
    Any other class list is kept as it is (ids = names = classes, indices unchanged). ImageNet-100 is
    recognised by its exact set of WordNet ids or synset words and mapped by name, never by position.
    """
    lookup = {key: i for i, (wnid, name) in enumerate(CLASSES) for key in (wnid, name)}
    if len(classes) == NUM_CLASSES and (set(classes) == set(WNIDS) or set(classes) == set(NAMES)):
        return list(WNIDS), list(NAMES), [lookup[c] for c in classes]
    return list(classes), list(classes), list(range(len(classes)))
