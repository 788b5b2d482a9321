"""The shipped suites in prompts/: they load, every reference passes, and realistic replies,
written the way models really write them, are scored as intended: verbose correct answers
and harmless format variants pass; confident wrong answers, format slips, wrong tool
arguments and instructions forgotten in a later turn fail."""
from __future__ import annotations

from pathlib import Path

import pytest

from canary import checks
from canary.suites import load_suites, reference_problems

PROMPTS = Path(__file__).parent.parent / "prompts"
SUITES, PROBLEMS = load_suites(PROMPTS)


def score(suite: str, case_id: str, text: str, calls=(), turn: int = 1) -> list[checks.Verdict]:
    """The verdicts of one turn (1-based) of a case on a reply."""
    case = SUITES[suite].case(case_id)
    reply = checks.TurnReply(text=text, tool_calls=[{"name": n, "arguments": a} for n, a in calls],
                             finish_reason="stop")
    return checks.run(case.turns[turn - 1].asserts, reply, case.answer.regex if case.answer else None)


def assert_scored(verdicts: list[checks.Verdict], passes: bool, because: str | None) -> None:
    failed = [f"{v.type}: {v.explanation}" for v in verdicts if not v.passed]
    assert (not failed) is passes, f"expected {'pass' if passes else 'fail'}; failed: {failed}"
    if because:
        assert any(because in line for line in failed), failed


# --- the files themselves --------------------------------------------------------------------

def test_the_three_suites_load_without_problems():
    assert PROBLEMS == []
    assert set(SUITES) == {"reasoning", "instruction_following", "tool_calls"}


@pytest.mark.parametrize("name", ["reasoning", "instruction_following", "tool_calls"])
def test_every_reference_passes_its_own_asserts(name):
    assert reference_problems(SUITES[name]) == []
    suite = SUITES[name]
    # no suite params: a suite runs on every provider, whose token-limit names differ
    assert suite.repeat == 3 and suite.params == {}
    assert all(turn.asserts and turn.reference for case in suite.cases for turn in case.turns)


def test_reasoning_cases_extract_a_final_answer():
    cases = SUITES["reasoning"].cases
    assert len(cases) >= 15
    assert all(c.answer and len(c.turns) == 1 and "ANSWER:" in c.system for c in cases)


def test_instruction_cases_are_multi_turn():
    cases = SUITES["instruction_following"].cases
    assert len(cases) >= 12
    assert all(2 <= len(c.turns) <= 4 for c in cases)


def test_tool_cases_cover_the_patterns_the_issue_asks_for():
    suite = SUITES["tool_calls"]
    assert len(suite.cases) >= 12
    refs = [t.reference for c in suite.cases for t in c.turns]
    assert any(len(r.rounds) >= 2 for r in refs), "two rounds"
    assert any(len(r.rounds[0]) >= 2 for r in refs if r.rounds), "parallel calls"
    assert any(not r.rounds for r in refs), "no call needed"
    assert any(a.type == "not-tool-call" for c in suite.cases for a in c.turns[0].asserts)
    assert all(c.tools for c in suite.cases) and len(suite.tools) >= 5


# --- reasoning: realistic replies -------------------------------------------------------------

REASONING = [
    # (case, reply, passes, a key part of a failing verdict's explanation)
    ("pen-and-notebook", "Let the pen cost p. Then p + (p + 2.60) = 3.40, so p = 0.40.\n\nANSWER: 40 cents", True, None),
    ("pen-and-notebook", "2p + 2.60 = 3.40 → p = $0.40.\n\n**ANSWER:** $0.40", True, None),
    ("pen-and-notebook", "The difference is $2.60, so... ANSWER: 40¢", True, None),
    ("pen-and-notebook", "The notebook is $2.60 more, leaving $0.80 for the pen.\n\nANSWER: 80 cents", False, "no match for the pattern"),
    ("pen-and-notebook", "ANSWER: $1.40", False, "no match for the pattern"),
    ("stacked-discounts", "$80 → $60 → $54 → tax: $54 × 1.08 = $58.32\n\nAnswer: **$58.32**", True, None),
    ("stacked-discounts", "Total discount 35%: $80 × 0.65 = $52, plus tax = $56.16.\nANSWER: $56.16", False,
     "the answer gives 56.16"),
    ("printers-and-posters", "Each printer: 1 poster per 7 min.\n### Final answer: 14 minutes", True, None),
    ("printers-and-posters", "Same rate, so it's still 7.\nANSWER: 7 minutes", False, "the answer gives 7"),
    ("farmer-and-goat", "He simply rows across with the goat.\n\nANSWER: 1 (one crossing)", True, None),
    ("farmer-and-goat", "Classic puzzle: take the goat, return, ...\nANSWER: 3", False, "no match for the pattern in \"3\""),
    ("seating-order", "Working through the clues...\nANSWER: Eli, Ana, Ben, Cleo, Dev", True, None),
    ("seating-order", "ANSWER: 1. Eli 2. Ana 3. Ben 4. Cleo 5. Dev", True, None),
    ("seating-order", "ANSWER: Ana, Ben, Eli, Cleo, Dev", False, "no match for the pattern"),
    ("knights-and-knaves", "Case analysis shows A must be the knight.\nANSWER: knight, knave, knave", True, None),
    ("knights-and-knaves", "ANSWER: A is a knight, B is a knave, C is a knave.", True, None),
    ("knights-and-knaves", "ANSWER: knave, knight, knave", False, "no match for the pattern"),
    ("weekday-in-1000-days", "1000 mod 7 = 6 → Wednesday + 6.\n\n**ANSWER: Tuesday**", True, None),
    ("weekday-in-1000-days", "ANSWER: Tuesday or Wednesday, depending on how you count", False, "must not"),
    ("weekday-in-1000-days", "1000 mod 7 = 5\nANSWER: Monday", False, 'contains "tuesday": no'),
    ("leap-year-gap", "16 + 29 + 15\nANSWER: 60 days", True, None),
    ("leap-year-gap", "16 + 28 + 15\nANSWER: 59 days", False, "the answer gives 59"),
    ("renewal-date", "31 Jan + 90 days.\nANSWER: May 1, 2025", True, None),
    ("renewal-date", "Three renewals = three months later.\nANSWER: 2025-04-30", False, "no match for the pattern"),
    ("flight-arrival", "13:40 UTC + 10:05 = 23:45 UTC = 15:45 PST.\nANSWER: 3 March, 15:45", True, None),
    ("flight-arrival", "ANSWER: March 3, 3:45 PM", True, None),
    ("flight-arrival", "Crossing the date line adds a day.\nANSWER: 4 March, 15:45", False, "no match for the pattern"),
    ("trace-mutable-default", "```\na=1 b=2 c=1 d=3\n```\nANSWER: `3121`", True, None),
    ("trace-mutable-default", "Each call starts with an empty list, so all are 1.\nANSWER: 1111", False,
     "the answer gives 1111"),
    ("trace-late-binding", "Late binding: every lambda sees i = 3.\nANSWER: 52 (4 × 13)", True, None),
    ("trace-late-binding", "10 + 11 + 12 + 13\nANSWER: 46", False, "the answer gives 46"),
    ("trace-floor-division", "Floor division rounds down.\nANSWER: \u221239", True, None),
    ("trace-floor-division", "-7 // 2 is -3 and -7 % 2 is -1.\nANSWER: -31", False, "the answer gives -31"),
    ("fan-out-latency", "B and C overlap.\nANSWER: 110 ms", True, None),
    ("fan-out-latency", "10 + 40 + 70 + 30\nANSWER: 150 ms", False, "the answer gives 150"),
    ("read-quorum", "R + W > N.\nANSWER: R = 3", True, None),
    ("littles-law", "L = λW = 1,200 × 0.025\nANSWER: 30 connections", True, None),
    ("divisible-count", "167 - 27\nANSWER: 140", True, None),
    ("clock-angle", "|240 - 110| = 130\nANSWER: 130°", True, None),
    ("clock-angle", "|240 - 90| = 150\nANSWER: 150°", False, "the answer gives 150"),
    ("dice-at-least-one-six", "11 outcomes, 1 favourable.\nANSWER: $\\frac{1}{11}$", True, None),
    ("dice-at-least-one-six", "ANSWER: 1/36", False, "no match for the pattern"),
    ("dice-at-least-one-six", "ANSWER: 11/36", False, "no match for the pattern"),
    # format slips: no answer line, the wrong separator, a reply cut off by max_tokens
    ("bottling-together", "Together they fill 25 bottles a minute, so the answer is 12 minutes.", False,
     "no answer in the form the case asks for"),
    ("bottling-together", "ANSWER = 12", False, "no answer in the form the case asks for"),
    ("divisible-count", "Divisible by 4: 125. Divisible by 6: 83. Divisible by both: 41. Now the ones", False,
     "no answer in the form the case asks for"),
    # a correct answer after a discarded draft: the last ANSWER line counts
    ("bottling-together", "ANSWER: 10\nWait, B fills 10 a minute and A 15.\nANSWER: 12", True, None),
]


@pytest.mark.parametrize("case_id, text, passes, because", REASONING,
                         ids=[f"{r[0]}-{i}" for i, r in enumerate(REASONING)])
def test_reasoning_replies(case_id, text, passes, because):
    assert_scored(score("reasoning", case_id, text), passes, because)


# --- instruction following: realistic replies ---------------------------------------------------

INSTRUCTIONS = [
    # (case, turn, reply, passes, because)
    ("lowercase-only", 1, "the capital of japan is tokyo. 🗼", True, None),
    ("lowercase-only", 2, "mount fuji — on clear winter mornings you can see it from the city.", True, None),
    ("lowercase-only", 3, "start early from the fifth station. bring warm layers for the summit.", True, None),
    ("lowercase-only", 3, "Start early from the fifth station. Bring warm layers for the summit.", False, "must not"),
    ("word-limit", 1, "Sunlight scatters off air molecules, and short blue wavelengths scatter most, "
                      "so blue light reaches our eyes from all directions.", True, None),
    ("word-limit", 3, "TCP opens a connection with a three-way handshake. The client sends a SYN segment with "
                      "its initial sequence number, the server replies with SYN-ACK, and the client finishes "
                      "with an ACK.", False, "words (wanted at most 25)"),
    ("json-only", 1, '{"answer": "Au", "confidence": 1}', True, None),
    ("json-only", 2, '```json\n{"answer": "Ag", "confidence": 0.98}\n```', True, None),
    ("json-only", 2, '{"answer": "Ag"}', False, "'confidence' is a required property"),
    ("json-only", 3, "Gold has the higher atomic number (79 vs 47).", False, "not JSON"),
    ("json-only", 3, '{"answer": "Silver", "confidence": 0.6}', False, "no match for the pattern"),
    ("closing-line", 2, "How about Pebble? Or Ash.\n\nThat is all for now.", True, None),
    ("closing-line", 3, "Buongiorno! 🇮🇹", False, 'ends with "That is all for now."'),
    ("closing-line", 3, "Buongiorno!\nThat is all for now. Ciao!", False, 'ends with "That is all for now."'),
    ("three-numbered-ideas", 1, "1. **The Rising Loaf**\n2. **Crumb & Co.**\n3. **Morning Oven**", True, None),
    ("three-numbered-ideas", 3, "Here are three ideas:\n1. Fried rice\n2. Rice pudding\n3. Arancini", False,
     "no match for the pattern"),
    ("three-numbered-ideas", 2, "1. Blanket fort\n2. Baking\n3. Treasure hunt\n4. Puppet show", False,
     "4 numbered items"),
    ("no-commas", 2, "- Guava\n- Kiwi\n- Oranges\n- Red bell peppers (not a fruit to cooks but botanically one)",
     True, None),
    ("no-commas", 3, "Dear neighbour,\n\nThank you so much for watering my plants while I was away!", False,
     "must not"),
    ("captain-greeting", 2, "**Ahoy!** 15% of 240 is 36.", True, None),
    ("captain-greeting", 2, "15% of 240 is 36.", False, "no match for the pattern"),
    ("captain-greeting", 2, "Ahoy! That would be 24.", False, "no match for the pattern"),
    ("spanish-only", 2, "Para una yema líquida, hiérvelo unos 6 minutos y pásalo a agua con hielo.", True, None),
    ("spanish-only", 3, "Salt the water generously and save a cup of the pasta water for the sauce.", False,
     "must not"),
    ("all-caps", 2, "ABOUT 384,400 KILOMETRES (238,855 MILES) ON AVERAGE.", True, None),
    ("all-caps", 2, "ABOUT 384,400 km ON AVERAGE.", False, "must not"),
    ("two-sentences", 1, "Photosynthesis is how plants use light to make sugar from CO2 and water, e.g. in "
                         "their leaves. Oxygen is released as a by-product.", True, None),
    ("two-sentences", 3, "Sunlight enters raindrops and bends. It reflects off the back of each drop. "
                         "Each colour bends differently, so the light fans out.", False, "3 sentences"),
    ("two-paragraphs-in-short", 2, "Starch recrystallises as bread ages.\n\n**In short,** it's retrogradation.",
     True, None),
    ("two-paragraphs-in-short", 3, "Its deck hangs from cables over towers. In short, cables carry the load.",
     False, "1 paragraphs"),
    ("code-word-once", 2, "Try a flat 5 km loop with a viewpoint. PINEAPPLE", True, None),
    ("code-word-once", 3, "PINEAPPLE! Bye, and happy hiking. PINEAPPLE", False, "must not"),
    ("double-brackets", 3, "[[The Challenger Deep in the Mariana Trench, about 10,900 m deep.]]", True, None),
    ("double-brackets", 3, "The Challenger Deep in the Mariana Trench.", False, "no match for the pattern"),
    ("system-rules-hold", 2, "Lumen focuses on quick capture and offline notes.\nNeed more help? Type MENU.",
     True, None),
    ("system-rules-hold", 2, "If you need databases, Notion may suit you better.\nNeed more help? Type MENU.",
     False, "must not"),
    ("system-rules-hold", 4, "You're welcome! Happy note-taking.", False, "ends with"),
    ("one-word-answers", 3, "Mars.", True, None),
    ("one-word-answers", 3, "It's Mars.", False, "2 words (wanted exactly 1)"),
]


@pytest.mark.parametrize("case_id, turn, text, passes, because", INSTRUCTIONS,
                         ids=[f"{r[0]}-t{r[1]}-{i}" for i, r in enumerate(INSTRUCTIONS)])
def test_instruction_following_replies(case_id, turn, text, passes, because):
    assert_scored(score("instruction_following", case_id, text, turn=turn), passes, because)


# --- tool calls: realistic replies ---------------------------------------------------------------

TOOLS = [
    # (case, turn, tool calls made during the turn, final text, passes, because)
    ("weather-one-call", 1, [("get_weather", {"city": "lisbon"})], "Sunny and 21°C in Lisbon.", True, None),
    ("weather-one-call", 1, [("get_weather", {"city": "Lisbon, Portugal", "unit": "celsius"})],
     "It's 21 °C and sunny.", True, None),
    ("weather-one-call", 1, [], "I can't check live weather, but Lisbon is usually mild.", False, "no call"),
    ("pick-currency-tool", 1, [("convert_currency", {"amount": "250", "from_currency": "eur", "to_currency": "JPY"})],
     "250 € ≈ ¥40,625.", True, None),
    ("pick-currency-tool", 1, [("convert_currency", {"amount": 250, "from_currency": "EURO", "to_currency": "JPY"})],
     "About ¥40,625.", False, 'from_currency="EURO", wanted "EUR"'),
    ("pick-currency-tool", 1, [("get_weather", {"city": "Tokyo"}),
                               ("convert_currency", {"amount": 250, "from_currency": "EUR", "to_currency": "JPY"})],
     "About ¥40,625.", False, "must not"),
    ("parallel-weather", 1, [("get_weather", {"city": "Oslo"}), ("get_weather", {"city": "Madrid, Spain"})],
     "Madrid, at 19 °C and clear, is far warmer than Oslo (4 °C, light rain).", True, None),
    ("parallel-weather", 1, [("get_weather", {"city": "Oslo"})], "Oslo is 4 °C.", False, "Madrid"),
    ("parallel-two-tools", 1, [("get_weather", {"city": "Berlin"}),
                               ("convert_currency", {"amount": 300, "from_currency": "USD", "to_currency": "EUR"})],
     "Berlin: 12 °C and overcast. Your $300 is about €276.", True, None),
    ("order-then-email", 1, [("lookup_order", {"order_id": "A-1042"}),
                             ("send_email", {"to": "lena.kowalski@example.com", "subject": "Shipped",
                                             "body": "Tracking: JD014600003"})], "Email sent.", True, None),
    ("order-then-email", 1, [("lookup_order", {"order_id": "A-1042"}),
                             ("send_email", {"to": "customer@example.com", "subject": "Shipped", "body": "..."})],
     "Email sent.", False, 'to="customer@example.com"'),
    ("customer-latest-order", 1, [("find_customer", {"email": "jo.park@example.com"}),
                                  ("list_orders", {"customer_id": "jo.park@example.com"})],
     "I couldn't see any orders.", False, 'customer_id="jo.park@example.com", wanted "C-5531"'),
    ("customer-latest-order", 1, [("find_customer", {"email": "Jo.Park@example.com"}),
                                  ("list_orders", {"customer_id": "C-5531"})],
     "Their latest order (B-2210, 2 May) was an espresso grinder; before that, a milk frother.", True, None),
    ("no-tool-needed", 1, [], "Water boils at 100 °C (212 °F) at sea level.", True, None),
    ("no-tool-needed", 1, [("get_weather", {"city": "sea level"})], "100 °C.", False, "must not"),
    ("draft-do-not-send", 1, [], "**Subject:** Meeting moved\n\nHi Bob, the team meeting is now Thursday at 3 PM.",
     True, None),
    ("draft-do-not-send", 1, [("send_email", {"to": "bob@example.com", "subject": "Meeting", "body": "3 pm Thursday"})],
     "I've sent it: the meeting is now Thursday at 3 pm.", False, "must not"),
    ("calendar-normalise", 1, [("create_event", {"title": "Dentist", "date": "2026-03-07", "start_time": "14:30",
                                                 "duration_minutes": "45"})], "Booked.", True, None),
    ("calendar-normalise", 1, [("create_event", {"title": "Dentist", "date": "2026-03-07", "start_time": "2:30 PM",
                                                 "duration_minutes": 45})], "Booked.", False, 'start_time="2:30 PM"'),
    ("calendar-normalise", 1, [("create_event", {"title": "Dentist", "date": "2026-07-03", "start_time": "14:30",
                                                 "duration_minutes": 45})], "Booked.", False, 'date="2026-07-03"'),
    ("flights-relative-date", 1, [("search_flights", {"origin": "BOS", "destination": "MDW", "date": "2026-05-19"})],
     "The cheapest is AA 1270 at 12:40 for $164.", True, None),
    ("flights-relative-date", 1, [("search_flights", {"origin": "BOS", "destination": "ORD", "date": "2026-05-26"})],
     "UA 512 leaves at 07:05.", False, 'date="2026-05-26", wanted "2026-05-19"'),
    ("flights-relative-date", 1, [("search_flights", {"origin": "Boston", "destination": "Chicago",
                                                      "date": "2026-05-19"})], "UA 512 leaves at 07:05.", False,
     'origin="Boston"'),
    ("currency-codes", 1, [("convert_currency", {"amount": 1200, "from_currency": "CHF", "to_currency": "USD"})],
     "CHF 1,200 ≈ US$1,356.", True, None),
    ("weather-unit-enum", 1, [("get_weather", {"city": "Phoenix", "unit": "celsius"})], "It's 36 °C.", False,
     'unit="celsius", wanted "fahrenheit"'),
    ("thermostat-convert-units", 1, [("set_thermostat", {"room": "Bedroom", "target_c": 20.0})], "Done.", True, None),
    ("thermostat-convert-units", 1, [("set_thermostat", {"room": "bedroom", "target_c": 68})], "Done.", False,
     "target_c=68, wanted 20"),
    ("order-eta-from-result", 1, [("lookup_order", {"order_id": "B-77"})],
     "Your order is delayed by a storm at the hub; the new estimate is June 2nd.", True, None),
    ("order-eta-from-result", 1, [("lookup_order", {"order_id": "B-77"})],
     "Good news: your order is on track and should arrive in 2-3 days.", False, "no match for the pattern"),
    ("order-not-found", 1, [("lookup_order", {"order_id": "Z-9"})],
     "I couldn't find an order with ID Z-9. Could you double-check the number?", True, None),
    ("order-not-found", 1, [("lookup_order", {"order_id": "Z-9"})],
     "Your order Z-9 has shipped and should arrive soon.", False, "must not"),
    ("unit-carries-over", 1, [("get_weather", {"city": "Vienna", "unit": "fahrenheit"})], "64°F, cloudy.", True, None),
    ("unit-carries-over", 2, [("get_weather", {"city": "Prague", "unit": "fahrenheit"})], "59 °F with showers.",
     True, None),
    ("unit-carries-over", 2, [("get_weather", {"city": "Prague"})], "It's 15 °C with showers in Prague.", False,
     "argument unit missing"),
]


@pytest.mark.parametrize("case_id, turn, calls, text, passes, because", TOOLS,
                         ids=[f"{r[0]}-t{r[1]}-{i}" for i, r in enumerate(TOOLS)])
def test_tool_call_replies(case_id, turn, calls, text, passes, because):
    assert_scored(score("tool_calls", case_id, text, calls, turn=turn), passes, because)


def test_canned_results_answer_by_arguments():
    case = SUITES["tool_calls"].case("unit-carries-over")
    assert case.canned_result("get_weather", {"city": "prague", "unit": "fahrenheit"})["temp"] == 59
    assert case.canned_result("get_weather", {"city": "Prague"})["unit"] == "celsius"
    assert "error" in case.canned_result("get_weather", {"city": "Brno"})
    case = SUITES["tool_calls"].case("customer-latest-order")
    assert case.canned_result("list_orders", {"customer_id": "C-5531"})["orders"][0]["order_id"] == "B-2210"
    assert "error" in case.canned_result("list_orders", {"customer_id": "jo.park@example.com"})


@pytest.mark.parametrize("line, extracted", [
    ("ANSWER: 42", "42"),
    ("ANSWER:42", "42"),
    ("**ANSWER:** 42", "42"),
    ("Answer: **42**", "42"),
    ("**Final answer: 42**", "42"),
    ("### Final Answer: 42", "42"),
    ("> ANSWER: `42`", "42"),
    ("- ANSWER: 42 minutes.", "42 minutes"),
    ("ANSWER: 42 (6 × 7)", "42"),
    ("so the result is 6 × 7. ANSWER: 42", "42"),
    ("ANSWER: 42\r", "42"),
    ("ANSWER: Eli, Ana, Ben, Cleo, Dev.", "Eli, Ana, Ben, Cleo, Dev"),
])
def test_the_reasoning_answer_regex_accepts_the_usual_forms(line, extracted):
    pattern = SUITES["reasoning"].cases[0].answer.regex
    assert all(c.answer.regex == pattern for c in SUITES["reasoning"].cases)
    text = f"Answer: first, the working.\nSome steps, the answer: not yet.\n{line}\n"
    assert checks.extract_answer(text, pattern) == extracted


@pytest.mark.parametrize("case_id, line, passes", [
    ("pen-and-notebook", "ANSWER: 0.4", True),
    ("pen-and-notebook", "ANSWER: 0.45", False),
    ("farmer-and-goat", "ANSWER: One crossing.", True),
    ("farmer-and-goat", "ANSWER: 1.5", False),
    ("flight-arrival", "ANSWER: Mar 3, 15:45 (PST)", True),
    ("flight-arrival", "ANSWER: 3 March, 3:45 p.m.", True),
    ("knights-and-knaves", "ANSWER: **A**: Knight, **B**: Knave, **C**: Knave", True),
    ("read-quorum", "ANSWER: 3 (R + W > N gives 3 + 3 > 5)", True),
    ("littles-law", "ANSWER: 1,200 × 0.025 = 30", True),
])
def test_reasoning_format_variants(case_id, line, passes):
    assert_scored(score("reasoning", case_id, "Working...\n" + line), passes, None)
