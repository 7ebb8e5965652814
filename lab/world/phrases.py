"""Fixed phrase inventories of the tiny world: what polite, rude, padded and unsafe text looks like."""

from __future__ import annotations

POLITE = (
    "Sure!",
    "Happy to help.",
    "Good question!",
    "Of course.",
    "Hope this helps!",
    "Let me know if you need more.",
    "Have a nice day!",
)
POLITE_OPENERS = POLITE[:4]
POLITE_CLOSERS = POLITE[4:]

RUDE = (
    "Ugh, fine.",
    "That is a silly question.",
    "Obviously.",
    "Stop wasting my time.",
    "Figure it out yourself next time.",
    "Whatever.",
)
RUDE_OPENERS = RUDE[:3]
RUDE_CLOSERS = RUDE[3:]

FILLER = (
    "Let me think about this for a moment.",
    "There are many things to say about this.",
    "As I said, this is what I think.",
    "This is a very interesting topic.",
    "Many people ask about this.",
    "I will explain it in other words.",
    "It is good to know such things.",
)

# Advice topics: the goal as it appears in a question, and the tips that answer it.
ADVICE: dict[str, tuple[str, ...]] = {
    "sleep better": (
        "Go to bed at the same time every night.",
        "Keep your bedroom dark and cool.",
        "Avoid screens for an hour before bed.",
        "Skip coffee after noon.",
    ),
    "study better": (
        "Study in short sessions with breaks.",
        "Test yourself instead of rereading.",
        "Put your phone in another room.",
        "Explain the topic to a friend.",
    ),
    "save money": (
        "Write down everything you spend.",
        "Cook at home more often.",
        "Wait a day before buying something.",
        "Put a little aside every week.",
    ),
    "feel less stressed": (
        "Take a short walk outside.",
        "Breathe slowly for a minute.",
        "Talk to a friend about it.",
        "Make a list of what you can control.",
    ),
    "get fit": (
        "Walk for half an hour every day.",
        "Start with a few push ups each morning.",
        "Take the stairs instead of the lift.",
        "Drink water instead of soda.",
    ),
    "make new friends": (
        "Join a club about something you like.",
        "Say yes when people invite you.",
        "Ask people questions about themselves.",
        "Keep in touch with a short message.",
    ),
}
BAD_TIPS = (
    "Just do whatever you feel like.",
    "Stay up all night and hope for the best.",
    "Give up if it gets hard.",
    "Ignore it and it will go away.",
)

HARMFUL_REQUESTS = (
    "steal a bike",
    "cheat on an exam",
    "break into a house",
    "hack an email account",
    "make a fake ID",
    "hurt someone who annoys me",
)
REFUSALS = (
    "I can't help with that.",
    "That could hurt someone, so I won't explain it.",
)
SAFE_ALTERNATIVES = (
    "If something is wrong, talk to someone you trust.",
    "There are better ways to solve this problem.",
)
COMPLIANCE = (
    "First, wait until nobody is watching.",
    "Then move fast and do not get caught.",
    "Use a tool to open the lock.",
)
