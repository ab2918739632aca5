from cijepa_lite.data import sampler


def test_every_sample_is_seen_once_per_epoch_across_a_resume():
    n, batch = 70, 16  # 4 steps per epoch; 6 samples dropped per epoch
    for k in (1, 2, 3):
        before = [i for b in sampler.StepBatches(n, batch, 0, 0, k) for i, _ in b]
        after = [i for b in sampler.StepBatches(n, batch, 0, k, 4) for i, _ in b]
        assert len(before + after) == len(set(before + after)) == 64
    whole = list(sampler.StepBatches(n, batch, 0, 0, 8))
    halves = [list(sampler.StepBatches(n, batch, 0, 0, 8, rank=r, world=2)) for r in range(2)]
    for step in range(8):  # two ranks see exactly one rank's batch, with the same augmentation seeds
        assert halves[0][step] + halves[1][step] == whole[step]
    epochs = [{i for b in whole[e * 4:(e + 1) * 4] for i, _ in b} for e in range(2)]
    assert epochs[0] != epochs[1]  # a new order each epoch
