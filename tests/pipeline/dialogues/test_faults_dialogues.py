"""Dialogue reruns: a rerun does not ask again for samples rejected before under the same prompt (the
rows would grow with every rerun), but does retry those the backend failed to answer; two writers at once
divide the samples through their work claims."""

from __future__ import annotations

import time

from test_dialogues import Completion, Scripted, _edit_samples

from m2ugen_data.dialogues.writer import write_dialogues


def test_rerun_leaves_rejected_samples_alone_and_retries_backend_failures(warehouse):
    bad = Completion("Sure, here you go!")  # fails validation: a rejection for what it says
    said_no = Scripted({"human": [bad], "gpt": [bad]})
    assert write_dialogues(warehouse, _edit_samples(2), said_no, max_attempts=2).rejected == 2
    rows = warehouse.read("dialogues", latest=False).num_rows
    again = write_dialogues(warehouse, _edit_samples(2), said_no, max_attempts=2)
    assert (again.rejected_before, again.rejected, said_no.calls) == (2, 0, [4, 4])  # no new requests
    assert warehouse.read("dialogues", latest=False).num_rows == rows

    down = Scripted({"human": [Completion(None, error="timeout")], "gpt": [Completion(None, error="timeout")]})
    others = _edit_samples(4)[2:]
    assert write_dialogues(warehouse, others, down, max_attempts=1).rejected == 2
    back = Scripted({"human": [Completion("Add piano to the piece, please.")],
                     "gpt": [Completion("Here is a music that is sad and slow.")]})
    assert write_dialogues(warehouse, others, back).accepted == 2  # the failed ones are asked again


def test_two_concurrent_dialogue_writers_divide_the_samples(warehouse) -> None:
    """The text stages claim through ``claimed_batches``: two writers at once ask the backend once per sample."""
    import threading

    from m2ugen_data.dialogues.template import TemplateBackend
    from m2ugen_data.dialogues.writer import write_dialogues

    asked: list[str] = []

    class Slow(TemplateBackend):
        def complete(self, requests):
            asked.extend(r.sample.sample_id for r in requests if r.side == "human")
            time.sleep(0.05)  # long enough for the other writer to come for the same work
            return super().complete(requests)

    samples = _edit_samples(24)
    results = []
    threads = [threading.Thread(target=lambda: results.append(write_dialogues(warehouse, samples, Slow(), batch_size=2)))
               for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(asked) == sorted(s.sample_id for s in samples)  # each sample generated once
    assert sorted(r.claimed_elsewhere > 0 for r in results) == [True, True]  # and both writers worked
    assert warehouse.read("dialogues").num_rows == 24
