"""Question-cleaning rules, language routing, the cleaning model's reply protocol, answer extraction."""

from __future__ import annotations

import pytest

from mfr.answers.extract import extract_answer, parse_extraction_reply
from mfr.text.clean_reply import parse_clean_reply
from mfr.text.clean_rules import clean_text, normalized_question
from mfr.text.language import detect_language
from mfr.text.routing import clean_question, route


@pytest.mark.parametrize(
    "raw, expected, action",
    [
        # numbering before the question (real BMMR originals)
        ("<image>19.下图反映了二战后非洲国界线多直线的状况。", "<image>下图反映了二战后非洲国界线多直线的状况。", "index_removed"),
        ("<image>1.下面 $ \\angle\\,1 $ 与 $ \\angle\\,2 $ 不是对顶角的是（）", "<image>下面 $ \\angle\\,1 $ 与 $ \\angle\\,2 $ 不是对顶角的是（）", "index_removed"),
        ("<image>Q12. Find x.", "<image>Find x.", "index_removed"),
        ("<image>Question 3: Find x.", "<image>Find x.", "index_removed"),
        ("第3题 求斜边的长度。", "求斜边的长度。", "index_removed"),
        ("<image>(2) Find the value.", "<image>Find the value.", "index_removed"),
        # score notes
        ("<image>第3题（5分）求斜边的长度。", "<image>求斜边的长度。", "score_note_removed"),
        ("<image>Find x. (5 points)", "<image>Find x.", "score_note_removed"),
        ("(本小题满分12分) 解方程。", "解方程。", "score_note_removed"),
        ("<image>Find x [3 marks]", "<image>Find x", "score_note_removed"),
        # links, e-mails, ads, signatures, watermarks
        ("<image>Find the area. See https://www.example-tutor.com/q/8812 for more practice problems.", "<image>Find the area.", "url_removed"),
        ("Find x (source: http://a.com/x).", "Find x.", "url_removed"),
        ("<image>Find x.\n\nContact: tutor@example.org -- Best regards, The Math Team", "<image>Find x.", "email_removed"),
        ("<image>本题来源：学科网\nFind x.", "<image>Find x.", "noise_line_removed"),
        ("Find x.\n关注公众号获取更多试题", "Find x.", "noise_line_removed"),
        # corrupted characters
        ("whatâ€™s the price?", "what’s the price?", "mojibake_repaired"),
        ("CafÃ© prices: find the total.", "Café prices: find the total.", "mojibake_repaired"),
        ("base area of \u200b\u200b4 and height 4", "base area of 4 and height 4", "control_chars_removed"),
        ("Find \ufffd\ufffd\ufffdx.", "Find x.", "replacement_chars_removed"),
        ("Find\x07 x.", "Find x.", "control_chars_removed"),
        # formatting residue
        ("Is this correct??? Yes!!!", "Is this correct? Yes!", "punctuation_collapsed"),
        ("Find x.&nbsp;<br>Given AB = 3.", "Find x.\nGiven AB = 3.", "markup_removed"),
        ("<p>Find <b>x</b>.</p>", "Find x.", "markup_removed"),
        ("Find x. ![](http://img.example/1.png)", "Find x.", "markup_removed"),
        ("Find   x.\n\n\n\nThen y.", "Find x.\n\nThen y.", "whitespace_normalized"),
    ],
)
def test_rule(raw: str, expected: str, action: str) -> None:
    out = clean_text(raw)
    assert out.text == expected
    assert action in out.actions


@pytest.mark.parametrize(
    "text",
    [
        "<image>1.5 m/s is the speed of the car. Find t.",  # a number, not an index
        "<image>Find x. The blank is ______ cm.",  # blanks stay
        "<image>A. 2 pieces\nB. 3 pieces\nC. 5 pieces",  # options stay
        "Find $\\frac{1}{2}$ of 10... then stop.",
        "<image>Euclid's figure: what is ∠ABC? (Enter your answers as a comma-separated list.)",
        "A ball of mass $m$ (see figure <image>) rolls.",
        "<image>**Rules:**\n1. This is a maze mini-game.\n2. The red circle represents the player.",
    ],
)
def test_rules_leave_clean_text_alone(text: str) -> None:
    out = clean_text(text)
    assert out.text == text and out.actions == []


def test_image_tags_survive_every_rule() -> None:
    out = clean_text("<image>Q3. <br> An object <image> is shown (5 points). Visit www.x.com for more!!")
    assert out.text.startswith("<image>") and out.text.count("<image>") == 2
    assert "www" not in out.text and "points" not in out.text and "<br>" not in out.text


def test_missing_text_is_an_action_not_a_crash() -> None:
    assert clean_text(None).actions == ["text_missing"]
    assert normalized_question(None) == ""
    assert normalized_question("<image>Find  X.") == normalized_question("find x.")


@pytest.mark.parametrize(
    "text, lang",
    [
        ("<image>如图所示，在风力推动下，风叶带动发电机发电", "zh"),
        ("<image>Find x in the figure. 请给出详细的推理过程。", "zh"),  # mixed: one clause is enough
        ("<image>Find the value of 答案.", "zh"),
        ("図の三角形の面積を求めよ。", "ja"),
        ("그림에서 x의 값을 구하시오.", "ko"),
        ("Найдите значение x на рисунке.", "ru"),
        ("Quelle est la valeur de x dans la figure? Calculez la longueur du segment.", "fr"),
        ("Wie groß ist der Winkel und welche Seite ist die längste?", "de"),
        ("¿Cuál es el valor de x en la figura? Calcula el área del triángulo.", "es"),
        ("Tìm giá trị của x trong hình và tính diện tích của tam giác.", "vi"),
        ("<image>Find x.", "en"),
        ("<image>Find $\\theta$ if $\\alpha = 30°$ and β = 40°, with Δx = 2.", "en"),
        ("<image>Compute $\\sqrt{2}+\\pi$.", "en"),
        ("<image>The café sells a naïve pie for $3. How much do 4 pies cost?", "en"),
        ("$x^2 = 4$", "en"),
        ("", "en"),
        ("<image>What is the missing shape denoted by a question mark?", "en"),
    ],
)
def test_language(text: str, lang: str) -> None:
    assert detect_language(text) == lang


EN_REQUEST = "Reason through the problem step by step, then give the final answer."


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("<image>What is the value? Answer the question using a single word or phrase.", f"<image>What is the value? {EN_REQUEST}"),
        ("<image>Compute it. Just give the answer.", f"<image>Compute it. {EN_REQUEST}"),
        ("<image>Which? Answer with the option's letter from the given choices directly.",
         f"<image>Which? Answer with the option's letter from the given choices. {EN_REQUEST}"),
        ("<image>求长度。直接写出答案。", "<image>求长度。请先逐步推理，再给出最终答案。"),
        ("<image>Find x. Answer directly.", f"<image>Find x. {EN_REQUEST}"),
        ("<image>Find x.\nAnswer directly.\nA. 1\nB. 2", f"<image>Find x.\n{EN_REQUEST}\nA. 1\nB. 2"),
        ("<image>Find x. Just give the answer. Answer directly.", f"<image>Find x. {EN_REQUEST}"),  # one request
    ],
)
def test_certain_shallow_instructions_are_rewritten_by_rule(raw: str, expected: str) -> None:
    r = route(raw)
    assert r.text == expected
    assert "instruction_rewritten" in r.actions
    assert "instruction" not in r.routes


def test_uncertain_instructions_and_tasks_go_to_the_model() -> None:
    assert "instruction" in route("<image>Find x and respond with the number directly, please.").routes
    assert "instruction" in route("<image>Find x without any explanation of how.").routes
    # other sources' ways of asking for the answer alone: the model decides
    assert "instruction" in route("<image>How many apples? Please answer the question with a single integer.").routes
    assert "instruction" in route("<image>Based on the image, directly select the correct answer.\nA: 30°\nB: 60°").routes
    assert "instruction" in route("<image>Which is it? Reply with only the letter.").routes
    assert route("<image>Answer with the option letter. A. 3 B. 5").routes == []  # a format, not a shortcut
    assert route("<image>The current is directly proportional to the voltage. Find R.").routes == []
    assert "task_check" in route("<image>Write a Python function that reads the chart.").routes
    # the seed's non-answer class is drawing and code: descriptions and essays stay (the dump kept them)
    assert route("<image>Please first describe the content of this figure in detail.").routes == []
    assert route("<image>Write a short essay on what the chart shows.").routes == []
    assert "task_check" in route("<image>请画出三角形的高。").routes
    assert route("<image>Draw conclusions: what is the area of the triangle?").routes == []
    # an instruction that is the whole question is not removed
    assert route("Just give the answer.").text == "Just give the answer."


def test_clean_question_combines_rules_routes_and_language() -> None:
    r = clean_question("<image>第3题（5分）图中共有几个黑色格子？直接写出答案。")
    assert r.text == "<image>图中共有几个黑色格子？请先逐步推理，再给出最终答案。"
    assert r.language == "zh" and r.routes == ["translation"]
    assert {"index_removed", "score_note_removed", "instruction_rewritten"} <= set(r.actions)


# --- the cleaning model's replies --------------------------------------------------------------------


@pytest.mark.parametrize("reply", ["No Problem", "no problem.", "  **No Problem**\n", "<think>fine</think>No Problem",
                                   '{"error_type": [], "corrected_text": ""}'])
def test_no_problem_replies(reply: str) -> None:
    r = parse_clean_reply(reply)
    assert r.parsed and r.no_problem and not r.unsuitable


@pytest.mark.parametrize(
    "reply",
    [
        '{"error_type": ["translation"], "corrected_text": "Find the hypotenuse."}',
        '```json\n{"error_type": ["translation"], "corrected_text": "Find the hypotenuse."}\n```',
        'Here is the result:\n{"error_type": ["Translation"], "corrected_text": "Find the hypotenuse."}\nHope this helps.',
        "<think>It is Chinese {so}.</think>\n{'error_type': ['translation'], 'corrected_text': 'Find the hypotenuse.'}",
        'reasoning goes here</think>{"error_type": "translation", "corrected_text": "Find the hypotenuse.",}',
        '{"Error-Type": ["translation"], "Corrected Text": "Find the hypotenuse."}',
    ],
)
def test_json_replies_in_odd_wrappers(reply: str) -> None:
    r = parse_clean_reply(reply)
    assert r.parsed and not r.no_problem
    assert r.error_types == ["translation"]
    assert r.corrected_text == "Find the hypotenuse."


def test_non_answer_and_braces_inside_strings() -> None:
    r = parse_clean_reply('{"error_type": ["non-answer question", "low_quality_instruction"], "corrected_text": "Draw {a} cat"}')
    assert r.unsuitable and r.error_types == ["non-answer question", "low-quality instruction"]
    assert r.corrected_text == "Draw {a} cat"
    assert parse_clean_reply('{"error_type": ["Unanswerable"]}').unsuitable


@pytest.mark.parametrize("reply", [None, "", "I think the question is fine but the image is blurry and also",
                                   '{"error_type": ["translation"], "corrected_text": ', "<think>never closed",
                                   '{"error_type": 3}'])
def test_unparseable_replies(reply: str | None) -> None:
    assert not parse_clean_reply(reply).parsed


# --- short answers from worked solutions -----------------------------------------------------------------


@pytest.mark.parametrize(
    "solution, answer",
    [
        ("Reading the figure gives the result.\nTherefore the answer is \\boxed{42}.", "42"),
        ("... so \\boxed{x=3} first, and finally \\boxed{\\frac{1}{2}}", "\\frac{1}{2}"),
        ("### Reasoning ###\nsteps\n### Final Answer ###\n$y = 3$", "y = 3"),
        ("Steps...\n**Final Answer:** C", "C"),
        ("The answer is 49", "49"),
        ("Answer: B", "B"),
        ("(B)", "B"),
        ("D", "D"),
        ("解：由图可知……故选B。", "B"),
        ("所以答案为 A、C", "A、C"),
        # layouts of other sources: a last line of its own, a sentence naming the option, full-width marks
        ("Solution: the area is 12.\nAnswer: 12", "12"),
        ("...so x = 5.\n\n**Answer:** 5", "5"),
        ("Ans: 20", "20"),
        ("Natalia sold 48 clips.\n#### 72", "72"),
        ("由题意……故答案为：$\\frac{1}{2}$", "\\frac{1}{2}"),
        ("解：……故选：B．", "B"),
        ("The correct option is B.", "B"),
        ("Thus, option (c) is correct.", "C"),
        ("Answer: \\(\\frac{3}{4}\\)", "\\frac{3}{4}"),
        # the last announcement counts, up to its sentence's end; an answer set apart in display math
        ("At first the answer is not obvious. After computing, the answer is 5.", "5"),
        ("the answer is 4 at first sight. Final Answer: 5", "5"),
        ("So the final answer is 3.\n\nWe double-check the units.", "3"),
        ("Hence the answer is 3.5.", "3.5"),
        ("### Final Answer\n$$\n\\frac{1}{2}\n$$", "\\frac{1}{2}"),
    ],
)
def test_answer_extraction_rules(solution: str, answer: str) -> None:
    assert extract_answer(solution) == answer


@pytest.mark.parametrize("solution", [None, "", "The figure is a diagram of the carbon cycle, showing how carbon moves.",
                                      "We compute many things.\nThe answer is " + "very long " * 30,
                                      "We discuss the answer: it depends.\nNo single value is right.",
                                      "Answer the question.\nThe figure shows a cat.",
                                      "The answer is B because it is the larger one.",
                                      "After all that, the answer is not 3."])
def test_answer_extraction_declines_when_unsure(solution: str | None) -> None:
    assert extract_answer(solution) is None


def test_answer_extraction_reply() -> None:
    assert parse_extraction_reply("<think>hmm</think>\nANSWER: 5 cm") == "5 cm"
    assert parse_extraction_reply("ANSWER: NONE") is None
    assert parse_extraction_reply("<think>the last line says 5</think><answer>5\\%</answer>") == "5\\%"  # the seed's protocol
    assert parse_extraction_reply("<answer></answer>") is None  # empty: no final answer
    assert parse_extraction_reply("<answer>Cannot be determined</answer>") == "Cannot be determined"
    assert parse_extraction_reply("no idea") is None
    assert parse_extraction_reply("**ANSWER:** $\\frac{1}{2}$") == "\\frac{1}{2}"


HOSTILE_TEXTS = [
    "a" * 200_000, "1. " * 50_000, "<image>" * 20_000, " " * 200_000, " \n" * 50_000, "a." * 100_000,
    "a@b." * 50_000, "\\(" * 50_000, "$$x" * 30_000, "![" * 50_000, "\\boxed{" * 20_000, "{" * 50_000,
    "see www.a.b " * 20_000, "{'a': " * 2000 + "1" + "}" * 2000, "```json {" * 20_000, "\x00\ufffd\u202e" * 30_000,
]


@pytest.mark.parametrize("text", HOSTILE_TEXTS, ids=lambda t: repr(t[:12]))
def test_hostile_text_never_backtracks_for_ever(text: str) -> None:
    """Every pattern is linear (bounded quantifiers, line-wise checks): a 100 KB+ hostile question or
    reply finishes in well under a second here; the alarm only turns a regression into a failure."""
    import signal

    def too_slow(*_):  # noqa: ANN002
        raise TimeoutError("catastrophic backtracking")

    old = signal.signal(signal.SIGALRM, too_slow)
    signal.alarm(20)
    try:
        cleaned = clean_question(text)
        answer = extract_answer(text)
        reply = parse_clean_reply(text)
        # and the outcomes are sane: cleaning only removes, no answer is invented from noise, and noise is
        # neither a clean verdict nor a correction
        assert len(cleaned.text) <= len(text)
        assert answer is None
        assert not reply.parsed and not reply.no_problem
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
