"""Convert GSM8K into reinforcement fine-tuning JSONL, as the Amazon Bedrock RFT walkthrough does.

Input: `shared/data/gsm8k/{train,test}.jsonl` in their original form, one
`{"question": ..., "answer": "...\\n#### N"}` a line. Output: `gsm8k_train.jsonl`
and `gsm8k_test.jsonl`, one line each like

    {"messages": [{"role": "system", "content": "You are a helpful math tutor ..."},
                  {"role": "user", "content": QUESTION + " Let's think step by step ..."}],
     "reference_answer": {"text": "#### N"},
     "task_id": "gsm8k-train-0", "data_source": "gsm8k"}

`reference_answer` is an object with a `text` key because AWS's GSM8K reward
function reads `reference_answer["text"]`. Every field beside `messages` reaches a
Lambda reward function in `metadata` (and a python grader as `item`).

    python examples/gsm8k_prepare.py --limit 200 --out /tmp/gsm8k
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

SYSTEM_PROMPT = "You are a helpful math tutor who solves word problems step by step."
INSTRUCTION = ' Let\'s think step by step and output the final answer after "####".'
# The repository sits beside `shared/` (/work/main and /work/shared; CI clones it
# into another folder with a copy of shared/ beside it).
DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "gsm8k"
_FINAL = re.compile(r"####\s*(.+?)\s*$")


def final_answer(answer: str) -> str:
    """The number after GSM8K's `####`, commas dropped ("1,000" -> "1000")."""
    match = _FINAL.search(answer.strip())
    if not match:
        raise ValueError(f"no '#### N' at the end of: {answer[-80:]!r}")
    return match.group(1).replace(",", "").strip()


def convert(record: dict, *, split: str, index: int) -> dict:
    """One GSM8K record as one RFT line (messages ending with the user's turn)."""
    return {
        "messages": [
            {"role": "system", "content": SYSTEM_PROMPT},
            {"role": "user", "content": record["question"].strip() + INSTRUCTION},
        ],
        "reference_answer": {"text": f"#### {final_answer(record['answer'])}"},
        "task_id": f"gsm8k-{split}-{index}",
        "data_source": "gsm8k",
    }


def convert_file(source: Path, dest: Path, *, split: str, limit: int) -> int:
    """Convert the first `limit` records of `source` into `dest`; returns the count."""
    count = 0
    dest.parent.mkdir(parents=True, exist_ok=True)
    with source.open(encoding="utf-8") as src, dest.open("w", encoding="utf-8") as out:
        for index, line in enumerate(src):
            if count >= limit:
                break
            if not line.strip():
                continue
            out.write(json.dumps(convert(json.loads(line), split=split, index=index)) + "\n")
            count += 1
    return count


def prepare(
    data: Path = DEFAULT_DATA,
    out: Path = Path("."),
    *,
    limit: int = 300,
    test_limit: int | None = None,
) -> dict[str, Path]:
    """Write `gsm8k_train.jsonl` (`limit` problems) and `gsm8k_test.jsonl` into `out`."""
    test_limit = max(1, limit // 4) if test_limit is None else test_limit
    paths = {}
    for split, n in (("train", limit), ("test", test_limit)):
        dest = out / f"gsm8k_{split}.jsonl"
        written = convert_file(data / f"{split}.jsonl", dest, split=split, limit=n)
        print(f"{split}: {written} problems -> {dest}", flush=True)
        paths[split] = dest
    return paths


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA,
                        help="folder with GSM8K's train.jsonl and test.jsonl")  # fmt: skip
    parser.add_argument("--out", type=Path, default=Path("."), help="output folder")
    parser.add_argument("--limit", type=int, default=300, help="training problems")
    parser.add_argument("--test-limit", type=int, default=None,
                        help="validation problems (default: a quarter of --limit)")  # fmt: skip
    args = parser.parse_args(argv)
    prepare(args.data, args.out, limit=args.limit, test_limit=args.test_limit)


if __name__ == "__main__":
    main()
