"""The schedule generators for every (stage, M), without MPI: each stage's stream does every
micro-batch's forward and backward once, in an order that runs to the end when executed
against its neighbours (a small event simulation: sends never wait, receives do), with the
theoretical bubble (S-1)/(M+S-1) and the micro-batches in flight that each schedule promises."""

from __future__ import annotations

import pytest

from bptrain.train.pipeline import schedule
from bptrain.train.pipeline.schedule import SCHEDULES, Op, bubble_fraction, micro_slices

# (op kind, micro-batch) -> the message kind and which neighbour it goes to / comes from
SENDS = {schedule.SEND_ACTIVATION: ("activation", +1), schedule.SEND_GRAD: ("grad", -1)}
RECVS = {schedule.RECV_ACTIVATION: ("activation", -1), schedule.RECV_GRAD: ("grad", +1)}


def simulate(streams: list[list[Op]], forward: float, backward: float) -> tuple[float, list]:
    """(the time the last stage finishes, each stage's busy time) of running ``streams``
    with the given compute times and free messages; fails on a deadlock."""
    clocks, busy, cursor = [0.0] * len(streams), [0.0] * len(streams), [0] * len(streams)
    mail: dict = {}  # (kind, from, to, micro) -> time sent
    while any(c < len(s) for c, s in zip(cursor, streams, strict=True)):
        progressed = False
        for s, stream in enumerate(streams):
            while cursor[s] < len(stream):
                op = stream[cursor[s]]
                if op.kind in RECVS:
                    kind, side = RECVS[op.kind]
                    key = (kind, s + side, s, op.micro)
                    if key not in mail:
                        break  # blocked until the neighbour sends
                    clocks[s] = max(clocks[s], mail.pop(key))
                elif op.kind in SENDS:
                    kind, side = SENDS[op.kind]
                    mail[(kind, s, s + side, op.micro)] = clocks[s]
                else:
                    cost = forward if op.kind == schedule.FORWARD else backward
                    clocks[s] += cost
                    busy[s] += cost
                cursor[s] += 1
                progressed = True
        assert progressed, f"deadlock at {cursor}"
    assert not mail, f"messages never received: {mail}"
    return max(clocks), busy


def in_flight(stream: list[Op]) -> int:
    """The most micro-batches forwarded and not yet backwarded at any point of ``stream``."""
    live, most = 0, 0
    for op in stream:
        live += {schedule.FORWARD: 1, schedule.BACKWARD: -1}.get(op.kind, 0)
        most = max(most, live)
    return most


@pytest.mark.parametrize("name", list(SCHEDULES))
@pytest.mark.parametrize("stages", [1, 2, 3, 4])
@pytest.mark.parametrize("micro", [1, 2, 3, 4, 8])
def test_every_stage_runs_each_micro_batch_once_and_the_pipeline_completes(name, stages, micro):
    streams = [SCHEDULES[name](s, stages, micro) for s in range(stages)]
    for s, stream in enumerate(streams):
        forwards = [op.micro for op in stream if op.kind == schedule.FORWARD]
        backwards = [op.micro for op in stream if op.kind == schedule.BACKWARD]
        assert sorted(forwards) == sorted(backwards) == list(range(micro))
        assert forwards == list(range(micro))  # the generator state passes on in this order
        for m in range(micro):
            assert stream.index(Op(schedule.FORWARD, m)) < stream.index(Op(schedule.BACKWARD, m))
        kinds = {op.kind for op in stream}
        assert (schedule.RECV_ACTIVATION in kinds) == (schedule.SEND_GRAD in kinds) == (s > 0)
        assert (schedule.SEND_ACTIVATION in kinds) == (schedule.RECV_GRAD in kinds)
        assert (schedule.SEND_ACTIVATION in kinds) == (s < stages - 1)
        limit = micro if name == "gpipe" else min(micro, stages - s)
        assert in_flight(stream) == limit
    # forward 1, backward 2 time units: the step takes (M+S-1) x 3 and each stage is idle
    # for the theoretical bubble fraction of it
    makespan, busy = simulate(streams, forward=1.0, backward=2.0)
    assert makespan == 3.0 * (micro + stages - 1)
    for b in busy:
        assert 1 - b / makespan == pytest.approx(bubble_fraction(stages, micro))


def test_the_schedules_in_full_for_two_stages_and_three_micro_batches():
    def short(ops):
        return " ".join(f"{op.kind.replace('_activation', '_a').replace('_grad', '_g')}{op.micro}"
                        for op in ops)  # fmt: skip

    assert short(schedule.gpipe(0, 2, 3)) == (
        "forward0 send_a0 forward1 send_a1 forward2 send_a2 "
        "recv_g2 backward2 recv_g1 backward1 recv_g0 backward0"
    )
    assert short(schedule.one_f_one_b(0, 2, 3)) == (
        "forward0 send_a0 forward1 send_a1 recv_g0 backward0 "
        "forward2 send_a2 recv_g1 backward1 recv_g2 backward2"
    )
    assert short(schedule.one_f_one_b(1, 2, 3)) == (
        "recv_a0 forward0 backward0 send_g0 recv_a1 forward1 backward1 send_g1 "
        "recv_a2 forward2 backward2 send_g2"
    )


@pytest.mark.parametrize(
    "start, stop, micro, expected",
    [
        (0, 19, 4, [(0, 4), (4, 9), (9, 14), (14, 19)]),
        (9, 19, 2, [(9, 14), (14, 19)]),
        (0, 2, 4, [(0, 1), (1, 2)]),  # fewer rows than micro-batches: none is empty
        (0, 1, 1, [(0, 1)]),
    ],
)
def test_micro_batches_are_consecutive_nearly_equal_rows(start, stop, micro, expected):
    assert micro_slices(start, stop, micro) == expected


def test_bubble_fraction():
    assert bubble_fraction(1, 4) == 0.0
    assert bubble_fraction(2, 1) == 0.5
    assert bubble_fraction(2, 4) == pytest.approx(1 / 5)
    assert bubble_fraction(4, 8) == pytest.approx(3 / 11)
