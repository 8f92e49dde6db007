"""``satori train`` past one device: the learner sharded with FSDP2 over ``torch.distributed``
ranks, rollouts on Ray actors, placement by Ray placement groups, and a memory plan before any
work. Nothing here is a scheduler or a collective of its own: Ray places and calls actors,
``torch.distributed`` (gloo on CPU, nccl on GPU) moves tensors, FSDP2 shards the model.
"""
