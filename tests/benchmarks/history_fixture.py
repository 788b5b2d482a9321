"""A year (or any span) of realistic stored history, written in bulk, for the read-side benchmarks.

    python tests/benchmarks/history_fixture.py --days 365 --dir /tmp/year   # a minute or two
    python tests/benchmarks/history_fixture.py --days 365 --dir /tmp/fp --models 1 --cases 10 --fingerprint

Writes a project (canary.yaml with 5 models, prompts/ with 3 suites of 52 cases) and its
database: each day every model runs every suite, 3 samples a case (156 samples a run, as
in the read-side issue: 5 x 3 x 365 x 156 = 854k samples a year), with a case mixture
like real suites (most cases pass almost always, some are flaky, a few hard), realistic
per-turn records (the prompt, the reply, the verdicts), tokens, cost and latency, and a
few quality alert episodes with their confirmation runs. Rows go in through the store's
own tables, many per statement, and each run is finished with the store's own aggregates
(so `runs.cases` and the counters are what `canary run` would have written); each point's
verdict is then judged and kept by the read path (`reports.history`), as the monitor keeps
it when it judges a run (`--no-verdicts`: a history from before verdicts were kept).
"""
from __future__ import annotations

import argparse
import json
import random
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from sqlalchemy import insert, update  # noqa: E402

from canary import reports  # noqa: E402
from canary.config import load_config  # noqa: E402
from canary.schema import alerts, runs  # noqa: E402
from canary.store import Store  # noqa: E402
from canary.suites import load_suites  # noqa: E402

MODELS = ["opus", "sonnet", "gpt", "gemini", "llama"]
SUITES = ["reasoning", "instruction_following", "tool_calls"]
CASES = 52


def write_project(root: Path, models: list[str], port: int = 0, n_cases: int = CASES) -> None:
    """canary.yaml and prompts/ for the fixture (keys from $BENCH_KEY; the schedule never
    catches up, so a daemon started on it only serves its pages)."""
    (root / "prompts").mkdir(parents=True, exist_ok=True)
    for name in SUITES:
        cases = "\n".join(f"""  - id: {name[:4]}-{i:02d}
    system: Finish with a final line of the form ANSWER followed by the number.
    prompt: "Question {i} of {name}: a train leaves at {i} o'clock and travels {i + 3} hours; a second train
      leaves an hour later. Work it out step by step, then give the arrival hour of the first train."
    answer: {{regex: "ANSWER:? *([0-9]+)"}}
    assert: [{{type: number, value: {i + i + 3}}}]
    reference: {{text: "It leaves at {i} and travels {i + 3} hours, so it arrives at {2 * i + 3}.\\nANSWER: {2 * i + 3}"}}"""
                            for i in range(n_cases))
        (root / "prompts" / f"{name}.yaml").write_text(f"suite: {name}\nrepeat: 3\ncases:\n{cases}\n")
    lines = [f"database: sqlite:///{root / 'canary.db'}", "schedule: '0 6 * * *'", "models:"]
    for i, m in enumerate(models):
        lines += [f"  - name: {m}", f"    provider: {'anthropic' if i % 2 == 0 else 'openai'}",
                  f"    model: {m}-model", "    api_key_env: BENCH_KEY", "    price: {input: 3.0, output: 15.0}"]
    lines += ["daemon:", f"  http: 127.0.0.1:{port}", "  catch_up: 1s"]
    (root / "canary.yaml").write_text("\n".join(lines) + "\n")


def case_rates(rng: random.Random, cases: list[str]) -> dict[str, float]:
    """70% of cases pass ~always, 20% are flaky, 10% hard (the mixture of the detection issue)."""
    out = {}
    for case in cases:
        u = rng.random()
        out[case] = 0.99 if u < 0.7 else rng.uniform(0.6, 0.95) if u < 0.9 else rng.uniform(0.05, 0.4)
    return out


def turn_records(case, passed: bool) -> list[dict]:
    records = []
    for t in case.turns:
        ref = t.reference
        text = ref.text if ref else "I am not sure."
        if not passed:
            text = "Sure! " + text[::-1]
        calls = [{"name": c.name, "arguments": c.arguments} for r in (ref.rounds if ref else []) for c in r]
        verdicts = [{"type": a.type, "passed": passed,
                     "explanation": f"{a.type}: {'yes' if passed else 'no'}, reply {text[:60]!r}"} for a in t.asserts]
        records.append({"user": t.user, "text": text, "tool_calls": calls, "finish_reason": "stop",
                        "verdicts": verdicts})
    return records


def build(root: Path, days: int, *, models: list[str] = MODELS, repeat: int = 3, seed: int = 1, cases: int = CASES,
          end: datetime | None = None, episodes: bool = True, port: int = 0, verdicts: bool = True) -> dict:
    """Write the project and `days` days of history ending yesterday 06:00 UTC; returns counts."""
    root.mkdir(parents=True, exist_ok=True)
    write_project(root, models, port, cases)
    db_url = f"sqlite:///{root / 'canary.db'}"
    suites, problems = load_suites(root / "prompts")
    assert not problems, problems
    rng = random.Random(seed)
    store = Store(db_url)
    end = end or datetime.utcnow().replace(hour=6, minute=0, second=0, microsecond=0) - timedelta(days=1)
    start = end - timedelta(days=days - 1)
    rates = {(m, s): case_rates(rng, [c.id for c in suite.cases]) for m in models for s, suite in suites.items()}
    # a regression episode per model every ~120 days, on one suite: 3 bad days, then recovery
    bad_days = {(m, sorted(suites)[i % 3], d) for i, m in enumerate(models) for d in range(60 + 17 * i, days, 120)
                for d in (d, d + 1, d + 2)} if episodes else set()
    n_samples = n_runs = 0
    t0 = time.perf_counter()
    with store.begin() as conn:
        for day in range(days):
            slot = start + timedelta(days=day)
            for m in models:
                for name, suite in sorted(suites.items()):
                    kinds = ["scheduled", "confirm"] if (m, name, day) in bad_days and (m, name, day - 1) not in bad_days \
                        else ["scheduled"]
                    for kind in kinds:
                        run_id = conn.execute(insert(runs).values(
                            model=m, suite=name, suite_version=suite.version, slot=slot, kind=kind, status="running",
                            owner="fixture", heartbeat_at=slot, started_at=slot, planned=len(suite.cases) * repeat,
                            passed=0, failed=0, errors=0, input_tokens=0, output_tokens=0).returning(runs.c.id)).scalar()
                        rows = []
                        for case in suite.cases:
                            p = rates[m, name][case.id] * (0.6 if (m, name, day) in bad_days else 1.0)
                            for i in range(repeat):
                                error = rng.random() < 0.003
                                passed = not error and rng.random() < p
                                out_tokens = rng.randint(40, 400)
                                rows.append({
                                    "run_id": run_id, "case_id": case.id, "sample": i,
                                    "status": "error" if error else "passed" if passed else "failed",
                                    "error": "overloaded" if error else None, "error_status": 529 if error else None,
                                    "error_message": "HTTP 529 overloaded_error: Overloaded" if error else None,
                                    "request_id": f"req_{rng.getrandbits(64):016x}",
                                    "input_tokens": 0 if error else rng.randint(200, 900),
                                    "output_tokens": 0 if error else out_tokens,
                                    "latency_ms": None if error else rng.uniform(800, 4000),
                                    "finish_reason": None if error else "stop",
                                    "reported_model": None if error else f"{m}-2026-10-01",
                                    "cost": None if error else out_tokens * 25e-6,
                                    "turns": [] if error else turn_records(case, passed),
                                    "finished_at": slot + timedelta(seconds=30 + i)})
                        store.insert_samples(rows, conn=conn)
                        conn.execute(update(runs).where(runs.c.id == run_id).values(
                            status="complete", finished_at=slot + timedelta(minutes=2), assessed_at=slot,
                            **store._aggregates(conn, run_id)))
                        n_samples += len(rows)
                        n_runs += 1
        if episodes:
            _alerts(conn, bad_days, start)
    if verdicts:  # what the monitor keeps on each run when it judges it (as a daemon would have)
        config = load_config(root / "canary.yaml")
        for m in models:
            for name in suites:
                reports.history(store, config, m, name)
    store.close()
    return {"runs": n_runs, "samples": n_samples, "seconds": time.perf_counter() - t0}


def add_fingerprint(root: Path, days: int, *, model: str = "opus", inputs: int = 20, samples: int = 10,
                    seed: int = 2, end: datetime | None = None) -> dict:
    """Make `model` of the project at `root` fingerprinted: a fingerprint of `inputs` border
    inputs and a probe a day for `days` days (inputs x samples one-token samples each, with
    first-token logprobs, as `canary fingerprint probe` stores them); each probe's
    measurement is then kept by the read path (fingerprint.series), as the daemon keeps it
    after each probe."""
    from canary.fingerprint.series import series
    from canary.schema import fingerprint_inputs, fingerprints
    cfg = root / "canary.yaml"
    text = cfg.read_text()
    marker = f"  - name: {model}\n"
    assert marker in text and "fingerprint:" not in text
    cfg.write_text(text.replace(marker, marker + "    fingerprint: true\n", 1))
    store = Store(f"sqlite:///{root / 'canary.db'}")
    rng = random.Random(seed)
    end = end or datetime.utcnow().replace(hour=6, minute=0, second=0, microsecond=0) - timedelta(days=1)
    start = end - timedelta(days=days - 1)
    prompts = [f"word{i:02d}" for i in range(inputs)]
    share = {p: rng.uniform(0.3, 0.7) for p in prompts}  # how often each input answers Yes
    t0 = time.perf_counter()
    with store.begin() as conn:
        fp = conn.execute(insert(fingerprints).values(
            model=model, version="fixture-fp", origin="init", created_at=start - timedelta(hours=1), temperature=0.0,
            logprobs=True, candidates=300, border=inputs, calls=300 * 10).returning(fingerprints.c.id)).scalar()
        conn.execute(insert(fingerprint_inputs), [
            {"fingerprint_id": fp, "position": i, "prompt": p, "reference": {"Yes": round(20 * share[p]),
                                                                           "No": 20 - round(20 * share[p])},
             "logprobs": {"Yes": -0.5, "No": -1.0}} for i, p in enumerate(prompts)])
        for day in range(days):
            slot = start + timedelta(days=day)
            run_id = conn.execute(insert(runs).values(
                model=model, suite="fingerprint", suite_version="fixture-fp", slot=slot, kind="scheduled",
                status="running", owner="fixture", heartbeat_at=slot, started_at=slot, planned=inputs * samples,
                passed=0, failed=0, errors=0, input_tokens=0, output_tokens=0).returning(runs.c.id)).scalar()
            rows = []
            for p in prompts:
                for i in range(samples):
                    token = "Yes" if rng.random() < share[p] else "No"
                    rows.append({"run_id": run_id, "case_id": p, "sample": i, "status": "passed",
                                 "request_id": f"req_{rng.getrandbits(64):016x}", "input_tokens": 12,
                                 "output_tokens": 1, "latency_ms": rng.uniform(200, 600), "finish_reason": "length",
                                 "cost": 12 * 3e-6 + 15e-6,
                                 "turns": [{"user": p, "text": token, "top_logprobs": [[token, -0.4], ["Maybe", -2.0]],
                                            "verdicts": []}],
                                 "finished_at": slot + timedelta(seconds=5)})
            store.insert_samples(rows, conn=conn)
            conn.execute(update(runs).where(runs.c.id == run_id).values(
                status="complete", finished_at=slot + timedelta(minutes=1), assessed_at=slot,
                **store._aggregates(conn, run_id)))
    probes = len(series(store, model))  # measured once and kept, as after each probe
    store.close()
    return {"probes": probes, "samples": days * inputs * samples, "seconds": time.perf_counter() - t0}


def _alerts(conn, bad_days, start: datetime) -> None:
    """One quality alert per episode: opened by its first bad day's run, closed by the recovery."""
    from sqlalchemy import and_, select
    firsts = sorted((m, s, d) for m, s, d in bad_days if (m, s, d - 1) not in bad_days)
    for m, s, d in firsts:
        def run_id(day):
            return conn.execute(select(runs.c.id).where(and_(
                runs.c.model == m, runs.c.suite == s, runs.c.kind == "scheduled",
                runs.c.slot == start + timedelta(days=day)))).scalar()
        opened, closed = run_id(d), run_id(d + 3)
        conn.execute(insert(alerts).values(
            model=m, suite=s, kind="quality", state="closed" if closed else "open",
            opened_at=start + timedelta(days=d), opened_run_id=opened,
            closed_at=start + timedelta(days=d + 3) if closed else None, closed_run_id=closed,
            closed_by="recovered" if closed else None, details={"reason": "fixture episode"}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--days", type=int, default=365)
    ap.add_argument("--dir", required=True, type=Path, help="where the project and its canary.db go")
    ap.add_argument("--models", type=int, default=5)
    ap.add_argument("--cases", type=int, default=CASES, help="cases a suite")
    ap.add_argument("--no-verdicts", action="store_true", help="leave runs.verdict empty (judged at first read)")
    ap.add_argument("--fingerprint", action="store_true", help="fingerprint the first model: a probe a day")
    args = ap.parse_args()
    root = args.dir.resolve()
    built = build(root, args.days, models=MODELS[:args.models], cases=args.cases, verdicts=not args.no_verdicts)
    if args.fingerprint:
        built["fingerprint"] = add_fingerprint(root, args.days, model=MODELS[0])
    print(json.dumps(built))


if __name__ == "__main__":
    main()
