"""Cases that several tests' suites share, as YAML text to compose a suite file from."""

CAPITAL_AND_SUM = """\
  - id: capital
    prompt: What is the capital of France? One word.
    assert: [{type: icontains, value: paris}]
    reference: {text: Paris}
  - id: sum
    prompt: "What is 12 + 30? End with ANSWER: <n>."
    answer: {regex: 'ANSWER:\\s*(\\S+)'}
    assert: [{type: number, value: 42}]
    reference: {text: "12 + 30 = 42\\nANSWER: 42"}
"""


def suite(name: str, repeat: int, cases: str) -> str:
    return f"suite: {name}\nrepeat: {repeat}\ncases:\n{cases}"
