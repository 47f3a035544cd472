"""What a sweep says, and where it goes: a ``SweepReporter`` the caller chooses (the command
line's ``Console``; ``Quiet`` by default), and the progress over the runs, one tqdm bar showing
the best trial so far (in a terminal), or one plain line per finished run, or nothing."""

from __future__ import annotations

import sys

from bptrain.sweep.plan import Run
from bptrain.sweep.spec import SweepSpec
from bptrain.sweep.worker import RunResult
from bptrain.train.progress import choose


class SweepReporter:
    """Where a sweep's lines go: ``line`` for its plan, progress and results, ``error`` for why
    it stopped. This one says nothing."""

    def line(self, text: str = "", flush: bool = False) -> None:
        pass

    def error(self, text: str) -> None:
        pass


Quiet = SweepReporter


class Console(SweepReporter):
    """Lines on stdout, errors on stderr: the command line's reporter."""

    def line(self, text: str = "", flush: bool = False) -> None:
        print(text, flush=flush)

    def error(self, text: str) -> None:
        print(text, file=sys.stderr)


class Progress:
    """One tqdm bar over the runs with the best trial so far (in a terminal), or one plain line
    per finished run (through ``out``)."""

    def __init__(
        self, spec: SweepSpec, runs: list[Run], results: dict, mode: str, out: SweepReporter
    ):
        self.spec, self.out = spec, out
        self.trial_of = {r.number: r.trial for r in runs}
        self.names = {r.number: r.name for r in runs}
        self.scores: dict[int, list[float]] = {}
        for number, event in results.items():
            if event["event"] == "done":
                self.scores.setdefault(self.trial_of[number], []).append(event["score"])
        self.total = len(runs)
        self.count = len(results)
        self.mode = choose(mode)
        self.bar = None
        if self.mode == "bar":
            from tqdm import tqdm

            self.bar = tqdm(
                total=self.total,
                initial=self.count,
                desc="runs",
                unit="run",
                file=sys.stderr,
                dynamic_ncols=True,
            )
            self._postfix()

    def best(self) -> str:
        if not self.scores:
            return "none yet"
        pick = max if self.spec.mode == "max" else min
        trial, scores = pick(self.scores.items(), key=lambda kv: sum(kv[1]) / len(kv[1]))
        return f"{sum(scores) / len(scores):.4f} (trial {trial})"

    def update(self, result: RunResult) -> None:
        self.count += 1
        if result.status == "done":
            self.scores.setdefault(self.trial_of[result.number], []).append(result.score)
        if self.bar is not None:
            if result.status != "done":
                self.bar.write(f"run {self.names[result.number]} failed: {result.error}")
            self.bar.update(1)
            self._postfix()
        elif self.mode == "plain":
            what = (
                f"{self.spec.metric} {result.score:.4f}"
                if result.status == "done"
                else f"FAILED: {result.error}"
            )
            self.out.line(
                f"[{self.count}/{self.total}] {self.names[result.number]}: {what}  "
                f"({result.seconds:.1f}s; best {self.best()})",
                flush=True,
            )

    def _postfix(self) -> None:
        self.bar.set_postfix_str(f"best {self.spec.metric} {self.best()}")

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
