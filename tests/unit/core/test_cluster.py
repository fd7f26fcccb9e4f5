import random

import pytest

from simulator.cluster import GpuPool


def test_pack_first_and_placement_strings():
    pool = GpuPool.uniform(3, 4)
    a = pool.allocate("a", 3)
    b = pool.allocate("b", 1)
    assert a.placement == "3" and b.nodes == a.nodes  # the fullest node that fits is used first
    c = pool.allocate("c", 6)
    assert c.placement == "42"
    assert pool.allocate("d", 3) is None  # 2 free GPUs remain
    assert pool.allocate("e", 2, max_nodes=1).gpus == 2
    pool.check()


def test_release_twice_is_an_error():
    pool = GpuPool.uniform(1, 4)
    a = pool.allocate("a", 2)
    pool.release(a)
    with pytest.raises(ValueError, match="released twice"):
        pool.release(a)


def test_random_grants_never_oversubscribe():
    rng = random.Random(7)
    pool = GpuPool.uniform(4, 4)
    held = []
    for step in range(2000):
        if held and rng.random() < 0.45:
            pool.release(held.pop(rng.randrange(len(held))))
        elif rng.random() < 0.5:
            a = pool.allocate_placement(f"p{step}", [rng.randint(1, 4) for _ in range(rng.randint(1, 3))])
            if a:
                held.append(a)
        else:
            a = pool.allocate(f"g{step}", rng.randint(1, 8))
            if a:
                held.append(a)
        pool.check()
        assert pool.used == sum(a.gpus for a in held) <= pool.capacity


def test_failed_node_hands_back_its_grants():
    pool = GpuPool.uniform(2, 4)
    a = pool.allocate("a", 4)
    lost = pool.fail_node(a.nodes[0])
    assert lost == [a] and pool.free == 4 - 0  # the other node only
    pool.release(a)
    pool.repair_node(a.nodes[0])
    assert pool.free == 8
