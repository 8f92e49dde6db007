"""COAT parsing, templates and rendering."""

import pytest

from satori_env.coat import PROMPT_TEMPLATES, PromptTemplate, count_actions, get_template, render_ansi, split_steps

TRAJECTORY = (
    "Let me see.<|continue|>3+4=8<|reflect|>3+4 is 7, not 8.<|explore|>3+4=7<|continue|>The answer is \\boxed{7}."
)


def test_split_steps_and_counts():
    steps = split_steps(TRAJECTORY)
    assert [s.action for s in steps] == [None, "continue", "reflect", "explore", "continue"]
    assert steps[2].text == "3+4 is 7, not 8." and steps[0].text == "Let me see."
    assert count_actions(TRAJECTORY) == {"continue": 2, "reflect": 1, "explore": 1}
    assert split_steps("") == [] and count_actions("") == {"continue": 0, "reflect": 0, "explore": 0}


def test_templates():
    assert get_template("compact").format("What is 1+1?") == "Problem: What is 1+1?\nSolution:"
    satori = PROMPT_TEMPLATES["satori"].format("Q")
    assert (
        satori.startswith("<|im_start|>user\n") and "\\boxed{}" in satori and satori.endswith("<|im_start|>assistant\n")
    )
    custom = get_template("Q: {question}\nA:")
    assert custom.format("x") == "Q: x\nA:" and get_template(custom) is custom


@pytest.mark.parametrize(
    "template, error, message",
    [
        ("chatml", ValueError, "unknown prompt template 'chatml'"),
        (42, TypeError, "prompt_template must be a str or PromptTemplate"),
    ],
)
def test_bad_templates(template, error, message):
    with pytest.raises(error, match=message):
        get_template(template)


@pytest.mark.parametrize("text", ["no field", "{question} and {other}", "{0}"])
def test_template_text_is_checked(text):
    with pytest.raises(ValueError, match="prompt template 'x'"):
        PromptTemplate("x", text)


def test_render_marks_each_step():
    plain = render_ansi("Problem: P", TRAJECTORY, colour=False)
    assert plain.splitlines()[2:] == [
        "[text] Let me see.",
        "[continue] 3+4=8",
        "[reflect] 3+4 is 7, not 8.",
        "[explore] 3+4=7",
        "[continue] The answer is \\boxed{7}.",
    ]
    assert "\x1b[33m[reflect]" in render_ansi("P", TRAJECTORY)
