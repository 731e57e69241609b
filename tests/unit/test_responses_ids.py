"""Response ids are unguessable; item ids are unique, also across forked workers."""

from __future__ import annotations

import os
import re

from sluicegate.dialects.responses_items import item_id, new_id


def test_response_ids_are_random_and_unique() -> None:
    ids = [new_id("resp") for _ in range(2000)]  # several blocks of random bytes
    assert len(set(ids)) == len(ids)
    assert all(re.fullmatch(r"resp_[0-9a-f]{48}", id) for id in ids)
    # No two ids share a run of bytes: each takes bytes of its own.
    assert len({id[5:21] for id in ids}) == len(ids)


def test_item_ids_are_unique() -> None:
    ids = [item_id("msg") for _ in range(2000)]
    assert len(set(ids)) == len(ids)
    assert all(re.fullmatch(r"msg_[0-9a-f]{48}", id) for id in ids)


def test_a_forked_worker_repeats_none_of_its_parents_ids() -> None:
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its next ids, to the parent
        os.close(read)
        os.write(write, f"{new_id('resp')} {item_id('msg')}".encode())
        os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        child = pipe.read().split()
    os.waitpid(pid, 0)
    assert child[0] != new_id("resp")
    assert child[1][:20] != item_id("msg")[:20]  # another process part
