"""Vocabularies the generators draw from: company names, people, tags, license types, prices.

Everything here is a tuple (never a set) so that draws from a seeded ``random.Random`` give the
same result in every process, whatever ``PYTHONHASHSEED`` is.
"""

from __future__ import annotations

from db.enums import Product

NAME_HEADS = (
    "North", "South", "East", "West", "Blue", "Red", "Green", "Silver", "Golden", "Iron",
    "Stone", "Oak", "Pine", "Cedar", "Maple", "River", "Lake", "Harbor", "Summit", "Valley",
    "Bright", "Clear", "Swift", "True", "High", "Grand", "Royal", "Prime", "Nova", "Apex",
    "Terra", "Aqua", "Sun", "Moon", "Star", "Sky", "Cloud", "Falcon", "Eagle", "Fox",
)  # fmt: skip
NAME_TAILS = (
    "wind", "ridge", "stone", "field", "brook", "wood", "gate", "point", "view", "crest",
    "line", "bridge", "port", "haven", "works", "mark", "path", "way", "light", "peak",
    "vale", "ford", "side", "land", "shore", "well", "star", "dale", "wave", "rock",
)  # fmt: skip
SURNAMES = (
    "Hartman", "Cole", "Whitaker", "Morales", "Okafor", "Lindqvist", "Nakamura", "Brennan",
    "Dubois", "Kowalski", "Rossi", "Fischer", "Patel", "Haddad", "Sato", "O'Neill", "Silva",
    "Jensen", "Novak", "Schmidt", "Bauer", "Moreau", "Costa", "Ferreira", "Andersen", "Walsh",
)  # fmt: skip
# (word in the company name, industry tag it suggests or "" for none)
INDUSTRIES = (
    ("Health", "Healthcare"), ("Medical", "Healthcare"), ("Clinics", "Healthcare"),
    ("Pharma", "Healthcare"), ("Dental", "Healthcare"), ("Academy", "Education"),
    ("Schools", "Education"), ("Learning", "Education"), ("University", "Education"),
    ("Capital", "Finance"), ("Bank", "Finance"), ("Insurance", "Finance"),
    ("Wealth", "Finance"), ("Markets", "Retail"), ("Outfitters", "Retail"),
    ("Foods", "Retail"), ("Stores", "Retail"), ("Manufacturing", "Manufacturing"),
    ("Industries", "Manufacturing"), ("Fabrication", "Manufacturing"),
    ("Robotics", "Manufacturing"), ("County Services", "Public sector"),
    ("Municipal Services", "Public sector"), ("Transit Authority", "Public sector"),
    ("Logistics", ""), ("Freight", ""), ("Consulting", ""), ("Partners", ""),
    ("Software", ""), ("Systems", ""), ("Networks", ""), ("Energy", ""), ("Solar", ""),
    ("Media", ""), ("Studios", ""), ("Hospitality", ""), ("Hotels", ""), ("Realty", ""),
    ("Construction", ""), ("Engineering", ""), ("Legal", ""), ("Labs", ""), ("Travel", ""),
)  # fmt: skip
LEGAL_SUFFIXES = (
    "Inc.", "LLC", "Ltd", "GmbH", "S.A.", "B.V.", "Group", "Co.", "AG", "Pty Ltd", "", "", "",
)  # fmt: skip
REGIONS = ("EMEA", "APAC", "Americas", "UK", "DACH", "Nordics", "Iberia", "Benelux")

FIRST_NAMES = (
    "Maria", "Li", "Tom", "Aisha", "Jonas", "Priya", "Diego", "Emma", "Kenji", "Fatima",
    "Lucas", "Chloe", "Omar", "Sofia", "Noah", "Ingrid", "Mateo", "Hannah", "Ravi", "Zoe",
)  # fmt: skip
LAST_NAMES = (
    "Garcia", "Wei", "Baker", "Khan", "Berg", "Sharma", "Lopez", "Martin", "Tanaka", "Haddad",
    "Meyer", "Dupont", "Nasser", "Conti", "Evans", "Larsen", "Ruiz", "Vogel", "Iyer", "Clarke",
)  # fmt: skip

# Partner tags: (name, description). Names are 1-25 characters and unique ignoring case.
TAGS = (
    ("Enterprise", "More than 250 licensed users"),
    ("Mid-market", "51 to 250 licensed users"),
    ("SMB", "Small business, up to 50 licensed users"),
    ("Healthcare", "Hospitals, clinics and life sciences"),
    ("Education", "Schools, universities and training providers"),
    ("Finance", "Banking, insurance and wealth management"),
    ("Retail", "Retail and consumer goods"),
    ("Manufacturing", "Manufacturing and industrial"),
    ("Public sector", "Government and public services"),
    ("Renewal Q1", "Paid subscription ends January to March"),
    ("Renewal Q2", "Paid subscription ends April to June"),
    ("Renewal Q3", "Paid subscription ends July to September"),
    ("Renewal Q4", "Paid subscription ends October to December"),
    ("At risk", "Suspended, over its licenses, inactive or about to lapse"),
    ("Upsell", "Candidate for more licenses or another product"),
    ("Calling migration", "Moving its telephony to Webex Calling"),
    ("Strategic", "Strategic account with an executive sponsor"),
    ("Pilot", "Evaluating Webex with a trial"),
    ("Needs follow-up", "Account manager to get in touch"),
    ("VIP support", "Escalate support cases to the priority queue"),
)
INDUSTRY_TAGS = ("Healthcare", "Education", "Finance", "Retail", "Manufacturing", "Public sector")

# License types offered per product, with draw weights.
LICENSE_TYPES: dict[str, tuple[tuple[str, ...], tuple[int, ...]]] = {
    Product.MEETINGS: (("Enterprise", "Standard", "Basic"), (4, 4, 2)),
    Product.CALLING: (("Enterprise", "Standard", "Basic"), (3, 5, 2)),
    Product.MESSAGING: (("Enterprise", "Standard", "Basic"), (2, 5, 3)),
    Product.REAL_TIME_TRANSLATION: (("Add-on",), (1,)),
    Product.CONTACT_CENTER: (("Premium Agent", "Standard Agent"), (1, 2)),
}
# A second Calling line for shared devices (lobby phones, meeting rooms).
COMMON_AREA = "Common Area"

# Monthly list price per license, in cents.
UNIT_PRICE_CENTS = {
    "Enterprise": 2500,
    "Standard": 1500,
    "Basic": 900,
    "Add-on": 1000,
    "Premium Agent": 11000,
    "Standard Agent": 7500,
    "Common Area": 800,
}
PRODUCT_LABELS = {
    Product.MEETINGS: "Webex Meetings",
    Product.CALLING: "Webex Calling",
    Product.MESSAGING: "Webex Messaging",
    Product.REAL_TIME_TRANSLATION: "Real-Time Translation",
    Product.CONTACT_CENTER: "Webex Contact Center",
}
